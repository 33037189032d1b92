"""Where the indexer keeps its documents: one `Collection` interface (`base`), two backends.

- embedded (the default): a SQLite database in the workspace, the vectors in memory
  (`memeflow.indexer.backends.embedded`);
- Milvus (`memeflow.indexer.backends.milvus`): a Milvus server (`http://HOST:19530`) or a
  Milvus Lite file (`*.db`); the indexer then holds no state.

`open_collection` picks one from MEMEFLOW_INDEX (`memeflow.config.index`).
"""

from pathlib import Path

from memeflow.indexer.backends.base import (
    Collection,
    CollectionWriteError,
    Frames,
    LexicalMatch,
    Selection,
    StoredDocument,
)

__all__ = [
    "Collection",
    "CollectionWriteError",
    "Frames",
    "LexicalMatch",
    "Selection",
    "StoredDocument",
    "is_milvus",
    "open_collection",
]

MILVUS_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


def is_milvus(index: str) -> bool:
    """Whether an MEMEFLOW_INDEX value names Milvus: a server's URI or a Milvus Lite file."""
    return index.lower().startswith(MILVUS_SCHEMES) or index.endswith(".db")


def open_collection(
    workspace: Path | None, *, index: str | None = None, collection: str = "memeflow",
    exact_max: int | None = None,
) -> Collection:
    """The collection `index` names (see `memeflow.config.index`): None, the embedded
    backend in `workspace` (None: in memory only); a folder, the embedded backend there;
    a Milvus URI or Lite file, the Milvus collection named `collection` in it.
    `exact_max` (embedded only): the most documents searched without the HNSW graph.

    Raises what the backend raises when it cannot open (a damaged or busy workspace, an
    unreachable server), with a message naming the fix."""
    if index is not None and is_milvus(index):
        from memeflow.indexer.backends.milvus import (  # type: ignore[import-not-found,unused-ignore]
            MilvusCollection,  # pymilvus: an optional dependency
        )

        return MilvusCollection(index, collection=collection)
    from memeflow.indexer.backends.embedded import EmbeddedCollection

    folder = Path(index).expanduser() if index is not None else workspace
    if exact_max is None:
        return EmbeddedCollection(folder)
    return EmbeddedCollection(folder, exact_max=exact_max)
