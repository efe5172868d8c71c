"""Storage drivers: where the registry keeps blobs, links and uploads (filesystem by default, S3)."""
