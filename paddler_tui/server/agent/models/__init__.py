"""Which model file to load: resolution, download, the local cache and GGUF metadata."""
