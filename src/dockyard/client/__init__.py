"""Engine API client over a unix socket (used by the `dockyard` CLI; nothing of the engine)."""
