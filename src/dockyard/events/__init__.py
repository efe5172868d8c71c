"""Engine events (`GET /events`, `docker events`): what services report, kept for a while and
streamed to subscribers. Services know nothing of it: they call a callback the daemon wires."""
