"""Getting models: Hugging Face downloads (resumable, verified), the curated list, deletion.

A model source, not a backend: files are fetched into a partial folder beside the user's models
folder, checked (SHA-256 against the hub's LFS metadata, then JARVIS's GGUF header reader) and
only then moved in, where the catalog sees them.
"""
