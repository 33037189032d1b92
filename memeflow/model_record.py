"""Where the identity of the model of an index's vectors is kept, and read at start.

`memeflow.workspace` describes the record and its keys: `model` (the model of the stored
vectors, None while there are none), `running_model` (the last encoder's to start on the
index) and `unknown_model_vectors`. The encoder checks its model against `model` at start
and writes `running_model`; the indexer makes that `model` at its first vectors and
forgets it at `/clear` (`memeflow.encoder.identity`, `memeflow.indexer.executor`).

The record lives where the documents do, so whoever reaches the documents reads it:
- the embedded backend, or a Milvus Lite file (which admits one process, the indexer's,
  on the machine of its workspace): `memeflow.json` in the workspace (`WorkspaceRecord`);
- a Milvus server: the `<collection>_model` collection beside the documents
  (`memeflow.indexer.backends.milvus_model`), so a service on another machine, with an
  empty workspace, knows the model of the vectors and refuses another one.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from memeflow import workspace
from memeflow.workspace import Meta

MILVUS_SERVER = ("http://", "https://", "tcp://", "grpc://")


class ModelRecord(Protocol):
    """The model identity of one index's vectors (see the module's docstring)."""

    @property
    def what(self) -> str:
        """The index, for messages: "workspace PATH", "Milvus collection NAME at URI"."""
        ...

    @property
    def elsewhere(self) -> str:
        """How to serve another model beside this index, for a refusal's message."""
        ...

    def read(self) -> Meta | None:
        """The record as it is (None: nothing recorded yet), without changing it."""
        ...

    def update(self, change: Callable[[Meta], Any]) -> Meta:
        """Applies `change` (which edits the dict it is given) and keeps the result."""
        ...

    def close(self) -> None:
        """Releases a connection, if it holds one."""
        ...


class WorkspaceRecord:
    """`memeflow.json` in the workspace `root`, under the workspace's lock."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def what(self) -> str:
        return f"workspace {self.root}"

    @property
    def elsewhere(self) -> str:
        return ("Serve the new model on another workspace (MEMEFLOW_WORKSPACE=FOLDER) and index "
                "your folders there; or rebuild this one: move it away, serve, and run "
                "`memeflow index` on your folders again")

    def read(self) -> Meta | None:
        return workspace.read_meta(self.root)

    def update(self, change: Callable[[Meta], Any]) -> Meta:
        return workspace.update(self.root, change)

    def close(self) -> None:
        pass


def is_milvus_server(index: str | None) -> bool:
    """Whether MEMEFLOW_INDEX names a Milvus server (not a Lite file, not a folder)."""
    return index is not None and index.lower().startswith(MILVUS_SERVER)


def model_record(root: Path, index: str | None = None, collection: str = "memeflow"
                 ) -> ModelRecord:
    """The record of the index `index` names (`memeflow.config.index`): a Milvus server's
    collection `collection`, else the workspace `root`. Raises ConnectionError naming the
    server when none answers there (pymilvus, the `milvus` extra, is imported only then)."""
    if is_milvus_server(index):
        assert index is not None  # is_milvus_server made sure
        from memeflow.indexer.backends.milvus_model import (  # type: ignore[import-not-found,unused-ignore]
            MilvusModelRecord,
        )

        return MilvusModelRecord.connect(index, collection)
    return WorkspaceRecord(root)
