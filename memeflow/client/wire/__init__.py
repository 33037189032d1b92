"""What the client sends and reads, as bytes: Jina's gRPC request message carrying DocArray
v2 documents (`memeflow_wire.proto`), coded from and to plain dicts (`codec.py`), so the
client needs neither Jina nor DocArray (importing them costs about a second)."""
