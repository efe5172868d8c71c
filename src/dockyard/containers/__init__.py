"""Containers: config apart from state, OCI spec generation, the container service."""
