"""The monitor: one subreaper process per daemon that owns every container's stdio, log file
and exit status, so containers outlive the API daemon (kill -9 included)."""
