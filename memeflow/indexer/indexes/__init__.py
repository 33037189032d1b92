"""What answers the embedded backend's searches fast: the vectors in memory, exact ranking,
the HNSW graph and when to use it, the tag index (filters) and the word index (BM25)."""
