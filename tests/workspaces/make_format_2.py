"""Writes tests/workspaces/format-2: a workspace as memeflow wrote it before SQLite."""
import json, shutil
from pathlib import Path
import numpy as np
from memeflow.indexer.store import Record, VectorStore
from memeflow.workspace import open_workspace, update

root = Path("tests/workspaces/format-2")
shutil.rmtree(root, ignore_errors=True)
open_workspace(root)
rng = np.random.default_rng(2)
store = VectorStore(root)
ids = [f"m{i:02d}" for i in range(40)]
vecs = rng.standard_normal((40, 8)).astype(np.float32)
recs = [Record(uri=f"/memes/{i}.jpg", tags={"folder": f"f{int(i[1:]) % 3}", "n": int(i[1:]), "kw": ["cat", i]}, words=("ONE DOES NOT SIMPLY" if i == "m07" else None)) for i in ids]
store.upsert(ids[:30], vecs[:30], recs[:30])
store._compact()                    # a snapshot of the first 30
store.upsert(ids[30:], vecs[30:], recs[30:])   # then log records after it
store.delete(["m03", "m31"])
vecs[5] = rng.standard_normal(8).astype(np.float32)
recs[5] = Record(uri="/memes/m05-moved.jpg", tags={"folder": "moved"})
store.upsert(["m05"], vecs[5:6], recs[5:6])
store.close()
from memeflow.workspace import bind_model; bind_model(root)
(root / ".memeflow.lock").unlink(missing_ok=True)
kept = [i for i in ids if i not in ("m03", "m31")]
norm = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
expected = {i: {"record": {k: v for k, v in recs[int(i[1:])].items() if v is not None}, "vector": norm[int(i[1:])].tolist()} for i in kept}
(root.parent / "format-2-expected.json").write_text(json.dumps(expected, indent=0))
print(sorted(p.name for p in root.iterdir()), json.loads((root / "memeflow.json").read_text()))
