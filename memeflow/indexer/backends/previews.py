"""Where the previews of indexed images live: a small interface beside `Collection`, so the
place is the backend's choice. The embedded backend keeps them as files in the workspace
(`memeflow.indexer.storage.thumbnails`); Milvus keeps them in Milvus
(`memeflow.indexer.backends.milvus_previews`), so every indexer replica serves every one.

A preview is a JPEG of at most 256 pixels a side (`memeflow.encoder.thumbnail`), a few KB to
about 45 KB, stored by document id; the executor writes one with its document and removes
it with the document (`/delete`, `/clear`)."""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping


class Previews(ABC):
    """JPEG bytes by document id. A write replaces the id's preview; reads of an id never
    stored give nothing, not an error."""

    @abstractmethod
    def put(self, doc_id: str, data: bytes) -> None:
        """Keeps `data` as the preview of `doc_id`, replacing any before it."""

    @abstractmethod
    def get(self, doc_id: str) -> bytes | None:
        """The preview of `doc_id`, None when it has none."""

    @abstractmethod
    def delete(self, doc_ids: Iterable[str]) -> None:
        """Removes the previews of these ids (those without one are skipped)."""

    @abstractmethod
    def clear(self) -> None:
        """Removes every preview."""

    def put_many(self, previews: Mapping[str, bytes]) -> None:
        """`put` of each item; a backend that writes over the network does it in one call."""
        for doc_id, data in previews.items():
            self.put(doc_id, data)

    def get_many(self, doc_ids: Iterable[str]) -> dict[str, bytes]:
        """The previews of the ids that have one, by id."""
        return {doc_id: data for doc_id in doc_ids if (data := self.get(doc_id)) is not None}
