"""Images: records pointing into content, layer unpacking, import."""
