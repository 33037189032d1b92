"""The collection interface: what the indexer executor and the search stages ask of the
place the documents live, and nothing of how it keeps them.

A collection holds documents by id: a unit-length float32 vector each and a
`StoredDocument` (uri, tags, the words read on it); an animated image or a video also
has `Frames`, the vectors of its sampled frames, and a dense search scores it by its best
frame (and says that frame's time, `frame_ms`). It answers two kinds of search over a
candidate set: dense (cosine similarity to query vectors, exact scores, ties by id) and
lexical (the words on the memes). A candidate set is a `Selection`: a `Where` the backend
compiled once for its own use (rows of a SQLite index, a Milvus boolean expression), so a
search that widens its pool does not filter again.

Two backends implement it (`memeflow.indexer.backends.open_collection` picks one): the
embedded one (SQLite in the workspace, vectors in memory) and Milvus.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np
from typing_extensions import NotRequired

from memeflow.documents import Hit
from memeflow.indexer.backends.previews import Previews
from memeflow.indexer.filters import Where

__all__ = [
    "Collection",
    "CollectionWriteError",
    "Frames",
    "Hit",
    "LexicalMatch",
    "Selection",
    "StoredDocument",
]


class StoredDocument(TypedDict):
    """What a collection keeps per document besides its id and vector; tags must be
    JSON-serialisable."""

    uri: str | None
    tags: dict[str, Any]
    words: NotRequired[str | None]  # read on the image by OCR


class Frames(NamedTuple):
    """The sampled frames of one document of several frames (an animated image, a video):
    `vectors` (k, dim) float32, k >= 1 (stored scaled to unit length), and `ms` their k
    times in milliseconds from the file's start, in the same order."""

    vectors: np.ndarray
    ms: list[int]


class LexicalMatch(NamedTuple):
    """A document found by the words on it: its id, its lexical score (BM25 or the
    backend's own, > 0, higher is better; comparable only within one answer), and
    whether the query occurs in its words whole (a quoted caption)."""

    id: str
    score: float
    phrase: bool


class CollectionWriteError(OSError):
    """The backend refused a write (a full disk, a lost server): nothing of it was stored."""


class Selection:
    """A `where` compiled by one backend for its searches; `where` None selects all.
    `empty` is True when the backend already knows nothing passes (a search then returns
    no hits without asking)."""

    def __init__(self, where: Where | None, *, empty: bool = False) -> None:
        self.where, self.empty = where, empty


class Collection(ABC):
    """Documents by id, their vectors, and searches over them.

    Every write is durable when the call returns (or raises, having changed nothing).
    Invalid input (a wrong dimension, a zero or non-finite vector, tags that are not
    JSON, an id that is not a str) raises ValueError or TypeError before anything changes.
    """

    # --- what it holds -------------------------------------------------------------------

    @property
    @abstractmethod
    def dim(self) -> int | None:
        """The vectors' dimension; None while the collection is empty (it takes the first
        upsert's) and again after `clear`."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the documents live, for logs and `/status` (a path, a server's URI)."""

    @abstractmethod
    def count(self) -> int:
        """The number of documents."""

    def __len__(self) -> int:
        return self.count()

    @abstractmethod
    def __contains__(self, doc_id: object) -> bool:
        """Whether a document with this id is stored."""

    # --- writes --------------------------------------------------------------------------

    @abstractmethod
    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               documents: Sequence[StoredDocument],
               frames: Sequence[Frames | None] | None = None) -> None:
        """Inserts or replaces by id; within one call the last duplicate wins. `vectors`:
        (n, dim) float32, any length but zero (stored scaled to unit length). `frames`:
        one per id (None: a still); an id stored again without frames loses its old ones.
        ValueError for frames of another dimension, NaN, inf, a zero row or times not one
        per frame, before anything changes."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Removes the given ids; returns how many were stored."""

    @abstractmethod
    def clear(self) -> None:
        """Removes every document and forgets the dimension."""

    # --- reads ---------------------------------------------------------------------------

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[StoredDocument | None]:
        """The stored documents in the order of `ids`, None for an absent id."""

    @abstractmethod
    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored unit vectors, (n, dim) float32; KeyError naming an absent id."""

    @abstractmethod
    def frames(self, ids: Sequence[str]) -> list[Frames | None]:
        """The stored frames (unit vectors, times) in the order of `ids`; None for a still
        or an absent id."""

    @abstractmethod
    def find(self, tag: str | None = None, values: Sequence[Any] = (),
             uri_prefix: str | None = None) -> list[str]:
        """Ids of the documents whose tag `tag` equals one of `values` (strings, numbers,
        bools; when `tag` is given; a list tag matches by its elements) and whose uri
        starts with `uri_prefix` (when given), in a stable order (the embedded backend:
        the order they were first stored in)."""

    # --- searches ------------------------------------------------------------------------

    @abstractmethod
    def select(self, where: Where | None) -> Selection:
        """The candidate set of a search: the documents whose tags pass `where` (all when
        None), as this backend searches it (`memeflow.indexer.filters` defines what
        passes)."""

    @abstractmethod
    def dense_search(self, queries: np.ndarray, top_k: int,
                     selection: Selection | None = None) -> list[list[Hit]]:
        """Per query ((q, dim) float32, any length but zero), the best `top_k` documents of
        the selection by cosine similarity, best first, ties by id. `score` is the exact
        cosine (float32 vectors, summed in float64, at most 1.0) whatever index found the
        candidates; `words` only when the document has some. A document with frames scores
        its best frame (max of its frames' cosines and its vector's), and its hit says that
        frame's time (`frame_ms`; a still's hit has no such key). ValueError for top_k < 1
        or a query of another dimension."""

    @abstractmethod
    def has_lexical(self) -> bool:
        """Whether any document has words (only then does a text query search them)."""

    @abstractmethod
    def lexical_search(self, text: str, top_k: int, selection: Selection | None = None
                       ) -> tuple[list[LexicalMatch], bool]:
        """The best `top_k` documents of the selection by the words on them (whole-phrase
        matches first, then by score, ties by id), and True when no further match exists
        beyond them (False: a larger top_k may find more)."""

    # --- identity and life ---------------------------------------------------------------

    @abstractmethod
    def model(self) -> dict[str, Any] | None:
        """The identity of the model the vectors come from, as `set_model` kept it."""

    @abstractmethod
    def set_model(self, model: dict[str, Any] | None) -> None:
        """Keeps the model identity (`memeflow.json`'s `model`) with the documents, so the
        collection alone says which model its vectors come from; None after a clear."""

    def previews(self, workspace: Path) -> Previews:
        """Where the previews of these documents live (`memeflow.indexer.backends.previews`):
        files in `workspace`'s `thumbnails/` folder, unless the backend keeps them itself."""
        from memeflow.indexer.storage.thumbnails import ThumbnailStore

        return ThumbnailStore(workspace / "thumbnails")

    @abstractmethod
    def close(self) -> None:
        """Releases what the collection holds (files, locks, connections); later calls
        raise RuntimeError. Safe to call twice."""
