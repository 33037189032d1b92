"""The model identity of a Milvus collection's vectors, kept in Milvus beside them
(`memeflow.model_record`): what `memeflow.json` holds for a workspace, for every indexer
and encoder that reaches the server, on any machine.

`<collection>_model` holds one row per key, `model` and `running_model`, the identity as
JSON (`memeflow.encoder.identity`); a key that is None has no row. Milvus wants a vector
field in every collection: `unused`, two zeros. `unknown_model_vectors` is not stored: it
is true when the documents' collection exists (it does from the first upsert to `clear`)
and no `model` is recorded, e.g. vectors stored before the record was kept here.

Unlike the workspace's file there is no lock: two encoders of different models starting
at the same moment on an empty collection both pass, the last one's identity stays
`running_model`; once vectors are bound, every later start is checked.
"""

import json
from collections.abc import Callable
from typing import Any

from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from memeflow.workspace import Meta

KEYS = ("model", "running_model")


class MilvusModelRecord:
    """The record of the collection `collection` through `client` (see the module's
    docstring); `owned`: close the client with the record."""

    def __init__(self, client: MilvusClient, collection: str, uri: str, *, owned: bool = False
                 ) -> None:
        self._client, self.collection, self.uri, self._owned = client, collection, uri, owned
        self.name = f"{collection}_model"

    @classmethod
    def connect(cls, uri: str, collection: str, timeout: float = 10.0) -> "MilvusModelRecord":
        """Raises ConnectionError naming `uri` when no Milvus answers there."""
        from memeflow.indexer.backends.milvus import KEEPALIVE  # which imports this module

        try:
            client = MilvusClient(uri=uri, timeout=timeout, grpc_options=KEEPALIVE)
        except MilvusException as exc:
            raise ConnectionError(
                f"no Milvus answered at {uri} ({exc.message}): start it, or set MEMEFLOW_INDEX "
                "to another server, or unset it to keep the index in the workspace"
            ) from None
        return cls(client, collection, uri, owned=True)

    @property
    def what(self) -> str:
        return f"Milvus collection {self.collection} at {self.uri}"

    @property
    def elsewhere(self) -> str:
        return ("Serve the new model on another collection (MEMEFLOW_COLLECTION=NAME) and index "
                "your folders there; or rebuild this one: serve the old model, `memeflow clear "
                "--yes`, serve the new one, and run `memeflow index` on your folders again")

    def read(self) -> Meta:
        found: dict[str, Any] = dict.fromkeys(KEYS)
        if self._client.has_collection(self.name):
            self._client.load_collection(self.name)  # one made by another process may be released
            for row in self._client.query(self.name, filter=f"key in {json.dumps(KEYS)}",
                                          output_fields=["value"]):
                found[row["key"]] = row["value"]
        found["unknown_model_vectors"] = (found["model"] is None
                                          and self._client.has_collection(self.collection))
        return found

    def update(self, change: Callable[[Meta], Any]) -> Meta:
        meta = self.read()
        before = dict(meta)
        change(meta)
        for key in KEYS:
            if meta.get(key) == before[key]:
                continue
            if meta.get(key) is None:
                self._client.delete(self.name, filter=f'key == "{key}"')
            else:
                self._create()
                self._client.upsert(self.name, [{"key": key, "value": meta[key],
                                                 "unused": [0.0, 0.0]}])
        if meta.get("unknown_model_vectors") and meta.get("model") is not None:
            meta["unknown_model_vectors"] = False  # as it reads from now on
        return meta

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def _create(self) -> None:
        if self._client.has_collection(self.name):
            return
        schema = self._client.create_schema(auto_id=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("value", DataType.JSON)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one
        index = self._client.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2")
        try:
            self._client.create_collection(self.name, schema=schema, index_params=index,
                                           consistency_level="Strong")
        except MilvusException:
            if not self._client.has_collection(self.name):
                raise  # not another process's creation first: a real failure
