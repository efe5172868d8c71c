"""Volumes: the local driver (and, later, volume plugins)."""
