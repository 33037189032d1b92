"""Previews in Milvus, beside the documents: a preview stored through one indexer replica
is served through every other, and no replica needs a volume of its own.

One collection, `<name>_previews`, one row per document:

| field | type | what |
| --- | --- | --- |
| id | VARCHAR, primary key | the document's id (up to 65,535 bytes, as in the documents) |
| jpeg | ARRAY of VARCHAR | the JPEG as base64, cut into pieces of `PIECE` characters |
| unused | FLOAT_VECTOR, 2-d | zeros: Milvus wants a vector field in every collection |

Why base64 in VARCHAR pieces: Milvus has no bytes field (a BINARY_VECTOR is a vector, and
searchable only as one), and a VARCHAR holds at most 65,535 bytes, about 48 KB of JPEG as
base64. The encoder's previews (256 pixels a side, JPEG quality 80) are a few KB to about
45 KB (a 256 x 256 picture of noise, the worst case): one piece almost always, and an
array of up to `MAX_PIECES` keeps a larger one (a preview sent with `/upsert`) whole in
its row, so a write or a delete is one row, never a preview in parts across rows. Each
piece is ASCII, so its length in characters is its size in bytes.
"""

import base64
import logging
from collections.abc import Iterable, Mapping

from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from memeflow.indexer.backends.base import CollectionWriteError
from memeflow.indexer.backends.milvus_where import ids_in
from memeflow.indexer.backends.previews import Previews
from memeflow.uris import printable

logger = logging.getLogger(__name__)

PIECE = 65_535  # characters of base64 per array element: a Milvus VARCHAR's most
MAX_PIECES = 16  # about 780 KB of JPEG; the encoder's previews take one
READ_BATCH = 1_000


class MilvusPreviews(Previews):
    """The previews of one Milvus collection's documents (see the module's docstring).
    `client` is the collection's own (a Milvus Lite file admits one client process)."""

    def __init__(self, client: MilvusClient, name: str, location: str) -> None:
        self._client, self.name, self.location = client, name, location
        self._loaded = False

    def put(self, doc_id: str, data: bytes) -> None:
        self.put_many({doc_id: data})

    def put_many(self, previews: Mapping[str, bytes]) -> None:
        """Raises CollectionWriteError when Milvus refuses the write. A preview of more than
        `MAX_PIECES` pieces is left out, with a warning: the page then shows none for it."""
        rows = []
        for doc_id, data in previews.items():
            text = base64.b64encode(data).decode("ascii")
            pieces = [text[i : i + PIECE] for i in range(0, len(text), PIECE)] or [""]
            if len(pieces) > MAX_PIECES:
                logger.warning("preview of %s not kept: %d bytes, Milvus keeps up to %d",
                               printable(doc_id), len(data), MAX_PIECES * PIECE * 3 // 4)
                continue
            rows.append({"id": doc_id, "jpeg": pieces, "unused": [0.0, 0.0]})
        if not rows:
            return
        self._create()
        try:
            self._client.upsert(self.name, rows)
        except MilvusException as exc:
            raise CollectionWriteError(f"Milvus at {self.location} refused the previews: "
                                       f"{exc.message}") from None

    def get(self, doc_id: str) -> bytes | None:
        return self.get_many([doc_id]).get(doc_id)

    def get_many(self, doc_ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(dict.fromkeys(doc_ids))
        if not ids or not self._exists():
            return {}
        found = {}
        for i in range(0, len(ids), READ_BATCH):
            for row in self._client.query(self.name, filter=ids_in(ids[i : i + READ_BATCH]),
                                          output_fields=["jpeg"]):
                found[row["id"]] = base64.b64decode("".join(row["jpeg"]))
        return found

    def delete(self, doc_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(doc_ids))
        if not ids or not self._exists():
            return
        for i in range(0, len(ids), READ_BATCH):
            self._client.delete(self.name, filter=ids_in(ids[i : i + READ_BATCH]))

    def clear(self) -> None:
        if self._client.has_collection(self.name):
            self._client.drop_collection(self.name)
        self._loaded = False

    def _exists(self) -> bool:
        """Asked of Milvus every time: another replica may have made or dropped it."""
        if not self._client.has_collection(self.name):
            self._loaded = False
            return False
        if not self._loaded:  # one made by an earlier process may be released
            self._client.load_collection(self.name)
            self._loaded = True
        return True

    def _create(self) -> None:
        if self._exists():
            return
        schema = self._client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=PIECE)
        schema.add_field("jpeg", DataType.ARRAY, element_type=DataType.VARCHAR,
                         max_capacity=MAX_PIECES, max_length=PIECE)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
        index = self._client.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2")
        try:  # Strong: a preview written through one replica is read through the next
            self._client.create_collection(self.name, schema=schema, index_params=index,
                                           consistency_level="Strong")
        except MilvusException:
            if not self._client.has_collection(self.name):
                raise  # not another replica's creation first: a real failure
        self._exists()



