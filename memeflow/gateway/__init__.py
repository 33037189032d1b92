"""The gateway stage: Jina's gRPC and HTTP servers with the search page, the API key and
the HTTP size limits (`gateway.py`). No model library is imported here."""
