"""Registry client: the Distribution API v2 / OCI distribution spec (pull for now)."""
