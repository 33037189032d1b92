"""The indexer stage: keeps documents in a SQLite database in the workspace and their
vectors in memory, answers searches (`executor.py`), and merges the answers of several
shards (`merger.py`).

Nothing here imports torch or transformers: an indexer process runs without them.
"""
