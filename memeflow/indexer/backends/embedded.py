"""The embedded backend: every document in a SQLite database in the workspace, in memory
only what a search scans (`memeflow.indexer.store`)."""

from memeflow.indexer.store import VectorStore as EmbeddedCollection

__all__ = ["EmbeddedCollection"]
