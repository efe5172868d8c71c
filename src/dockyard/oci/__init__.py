"""Pure data: digests, references, media types."""
