"""Dockyard's OCI runtime (runc's command line). Imports nothing above `linux`."""
