"""The daemon: composition root, configuration, listeners."""
