"""Writes tests/workspaces/format-2: a workspace as the snapshot + log store wrote it (the
format the SQLite store moves into its database). It needs that store, so it runs only at
commit e1d3be5 or before (`git worktree add /tmp/old e1d3be5`, then run it there with
PYTHONPATH=/tmp/old). format-2-expected.json holds what the store must read back.
"""

import json
import shutil
from pathlib import Path

import numpy as np
from memeflow.indexer.store import Record, VectorStore  # type: ignore[attr-defined]

from memeflow.workspace import bind_model, open_workspace

root = Path(__file__).parent / "format-2"
shutil.rmtree(root, ignore_errors=True)
open_workspace(root)
rng = np.random.default_rng(2)
store = VectorStore(root)
ids = [f"m{i:02d}" for i in range(40)]
vectors = rng.standard_normal((40, 8)).astype(np.float32)
records = [
    Record(uri=f"/memes/{doc_id}.jpg",
           tags={"folder": f"f{i % 3}", "n": i, "kw": ["cat", doc_id]},
           words="ONE DOES NOT SIMPLY" if doc_id == "m07" else None)
    for i, doc_id in enumerate(ids)
]
store.upsert(ids[:30], vectors[:30], records[:30])
store._compact()  # a snapshot of the first 30
store.upsert(ids[30:], vectors[30:], records[30:])  # then log records after it
store.delete(["m03", "m31"])
vectors[5] = rng.standard_normal(8).astype(np.float32)
records[5] = Record(uri="/memes/m05-moved.jpg", tags={"folder": "moved"})
store.upsert(["m05"], vectors[5:6], records[5:6])  # the last log record
store.close()
bind_model(root)
(root / ".memeflow.lock").unlink(missing_ok=True)
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
expected = {
    doc_id: {"record": {k: v for k, v in records[i].items() if v is not None},
             "vector": unit[i].tolist()}
    for i, doc_id in enumerate(ids) if doc_id not in ("m03", "m31")
}
(root.parent / "format-2-expected.json").write_text(json.dumps(expected, indent=0))
