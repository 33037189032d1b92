"""The embedded backend's files: the SQLite database and its tables, the workspace lock,
atomic file writes, thumbnails, and the once-only move from the snapshot + log format."""
