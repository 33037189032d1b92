"""The indexer stage: stores vectors and records in a workspace and answers searches
(`executor.py`), and merges the answers of several shards (`merger.py`).

Nothing here imports torch or transformers: an indexer process runs without them.
"""
