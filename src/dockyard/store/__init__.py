"""Storage: content-addressed blobs, overlay snapshots, SQLite metadata. Knows nothing of HTTP."""
