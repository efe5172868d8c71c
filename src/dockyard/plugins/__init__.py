"""Managed plugins: Docker's plugin format, store, registry transfer and the plugin containers."""
