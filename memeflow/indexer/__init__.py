"""The indexer stage: the executor (`executor.py`) stores documents in a collection
(`backends/`: the Collection interface, the embedded SQLite backend and Milvus) and
answers searches as one pass of stages (`search/`); `storage/` holds the embedded
backend's files, `indexes/` what answers its searches fast; `merger.py` merges the answers
of several shards.

Nothing here imports torch or transformers: an indexer process runs without them.
"""
