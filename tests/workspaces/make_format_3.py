"""Writes tests/workspaces/format-3: a workspace as the SQLite store wrote it at schema
version 1, before frames (commit 0e8d44d; `git worktree add /tmp/v1 0e8d44d`, then run it
there with PYTHONPATH=/tmp/v1). The database is rewritten with small pages so the fixture
stays small; format-3-expected.json holds what the store must read back.
"""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from memeflow.indexer.backends.embedded import EmbeddedCollection
from memeflow.workspace import bind_model, open_workspace

root = Path(__file__).parent / "format-3"
shutil.rmtree(root, ignore_errors=True)
open_workspace(root)
rng = np.random.default_rng(3)
ids = [f"v{i:02d}" for i in range(12)]
vectors = rng.standard_normal((12, 8)).astype(np.float32)
documents = [{"uri": f"/memes/{doc_id}.jpg", "tags": {"folder": f"f{i % 3}", "n": i},
              **({"words": "SUCH WOW VERY DOGE"} if i == 4 else {})}
             for i, doc_id in enumerate(ids)]
store = EmbeddedCollection(root)
store.upsert(ids, vectors, documents)  # type: ignore[arg-type]
store.delete(["v02"])  # the last row moves into its place
store.close()
bind_model(root)
for leftover in (".memeflow.lock", "index.lock"):
    (root / leftover).unlink(missing_ok=True)
conn = sqlite3.connect(root / "index.db", isolation_level=None)
conn.execute("PRAGMA journal_mode=DELETE")
conn.execute("PRAGMA page_size=1024")
conn.execute("VACUUM")
conn.close()
kept = [i for i, doc_id in enumerate(ids) if doc_id != "v02"]
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
expected = {"ids": [ids[i] for i in kept], "vectors": unit[kept].tolist(),
            "documents": [documents[i] for i in kept]}
(Path(__file__).parent / "format-3-expected.json").write_text(json.dumps(expected) + "\n")
