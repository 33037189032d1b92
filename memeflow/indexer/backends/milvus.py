"""The Milvus backend: every document in one Milvus collection, nothing in the indexer.

`MEMEFLOW_INDEX=http://HOST:19530` (Milvus Standalone or Distributed, or Milvus Lite's
`milvus-lite server`) or a Milvus Lite file (`*.db`, run inside the indexer's process).
Since the server holds everything, any number of indexer replicas can share a collection.

One collection per index (`MEMEFLOW_COLLECTION`, default "memeflow"), created at the first
upsert (its vectors' dimension fixes the schema) and dropped by `clear`:

| field | type | what |
| --- | --- | --- |
| id | VARCHAR, primary key | the document's id |
| uri | VARCHAR | its uri ("" for none; `has_uri` tells) |
| tags | JSON | its tags as JSON can hold them (`milvus_where.json_safe`) |
| exact_tags | VARCHAR | the tags as JSON text when `tags` could not hold them exactly, else "" |
| tag_names, valued_tags, numbers | ARRAY, ARRAY, JSON | what the filters read (`milvus_where`) |
| words | VARCHAR, nullable | the words read on it |
| grams | VARCHAR, analysed | the words' character trigrams, space-separated |
| grams_bm25 | SPARSE_FLOAT_VECTOR | BM25 of the grams, made by Milvus (a BM25 `Function`) |
| vector | FLOAT_VECTOR | the unit-length vector (HNSW, COSINE) |

The words are matched as the embedded backend matches them (`memeflow.indexer.indexes.words`):
letters and digits only, compared as character trigrams, since OCR loses the spaces
between words; Milvus ranks the grams by BM25 (its k1 1.2, b 0.75, the same idf), and the
backend keeps the matches holding at least half the query's grams, whole phrases first.

Scores are exact cosines: HNSW proposes candidates and they are scored again here from
their stored float32 vectors (in float64; ties by id), as the embedded backend scores.
The model identity lives in a second, small collection, `<name>_model`
(`memeflow.indexer.backends.milvus_model`), the previews in a third, `<name>_previews`
(`memeflow.indexer.backends.milvus_previews`).

The frames of animated images and videos live in a fourth, `<name>_frames` (made at the
first upsert that brings frames), one row per frame: `key` (its own, made by Milvus), `id`
(its document's), `n` (its place among them), `ms`, `vector`, and a copy of the document's
filter fields (`tags`, `tag_names`, `valued_tags`, `numbers`), so the very expression a
selection compiled to (`id in [...]` included) filters frames as it filters documents,
while `count`, `find`, `get` and the lexical search never see a frame. A dense search asks
both collections, takes the union of the documents they propose and scores each by its
best frame (exactly, from all of its stored frames).
"""

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.exceptions import MilvusException

from memeflow.documents import Hit
from memeflow.indexer.backends.base import (
    Collection,
    CollectionWriteError,
    Frames,
    LexicalMatch,
    Selection,
    StoredDocument,
)
from memeflow.indexer.backends.checks import (
    id_list,
    tag_json,
    unit_frames,
    unit_vectors,
    valid_text,
)
from memeflow.indexer.backends.milvus_model import MilvusModelRecord
from memeflow.indexer.backends.milvus_previews import MilvusPreviews
from memeflow.indexer.backends.milvus_where import (
    MilvusFilter,
    compile_where,
    equals_any,
    exact_operand,
    filter_fields,
    ids_in,
    quoted,
)
from memeflow.indexer.filters import Where
from memeflow.indexer.indexes.words import DEFAULT_MIN_COVERAGE, GRAM, grams, normalise
from memeflow.uris import printable

logger = logging.getLogger(__name__)

MAX_TEXT = 65_535  # bytes in a Milvus VARCHAR
MAX_TAGS = 4_096  # elements in a Milvus ARRAY
MAX_TAG_NAME = 1_024
MAX_LIMIT = 16_384  # Milvus's largest limit (top_k) of one search or query
FILTER_FIELDS = ("tags", "tag_names", "valued_tags", "numbers")  # what `milvus_where` reads
CANDIDATE_MARGIN = 10  # candidates beyond top_k: the exact rescoring may reorder the edge
READ_BATCH = 1_000
FRAME_READ_IDS = MAX_LIMIT // 64  # documents whose frames one query reads
PAD = "_"
# pymilvus pings an idle connection every 10 s; a gRPC server left at its defaults (Milvus
# Lite's) allows one ping per 5 minutes and closes the connection after the third: ping
# no more often than that, and only while a call is under way.
KEEPALIVE = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}


def gram_text(words: str | None) -> str:
    """The character trigrams of `words`, space-separated, as `memeflow.indexer.indexes.words`
    indexes them (a text of one or two letters is padded to one gram). Each gram is letters,
    digits or `_`: one token for Milvus's standard analyser."""
    letters = normalise(words or "")
    if not letters:
        return ""
    if len(letters) < GRAM:
        return letters.rjust(GRAM, PAD)
    text, size = [], 0
    for i in range(len(letters) - GRAM + 1):  # as many as a VARCHAR holds (65,535 bytes)
        gram = letters[i : i + GRAM]
        size += len(gram.encode("utf-8")) + 1
        if size > MAX_TEXT + 1:
            break
        text.append(gram)
    return " ".join(text)


def _query_grams(text: str) -> list[str]:
    letters = normalise(text)
    if len(letters) < GRAM:
        return [letters.rjust(GRAM, PAD)] if letters else []
    return list(grams(letters))


class MilvusSelection(Selection):
    """A `where` as a Milvus expression: `expression` None selects everything."""

    def __init__(self, where: Where | None, expression: str | None, *, empty: bool = False
                 ) -> None:
        super().__init__(where, empty=empty)
        self.expression = expression


class MilvusCollection(Collection):
    """Documents in a Milvus collection (see the module's docstring)."""

    def __init__(self, uri: str, *, collection: str = "memeflow", token: str = "",
                 timeout: float = 10.0) -> None:
        """`uri`: a server (`http://HOST:19530`) or a Milvus Lite file; `token`: its
        credentials ("user:password" or an API key), if it asks for any. Raises
        ConnectionError naming the uri when no Milvus answers there within `timeout` s."""
        self.uri, self.name, self.model_name = uri, collection, f"{collection}_model"
        self.frames_name = f"{collection}_frames"
        try:
            self._client = MilvusClient(uri=uri, token=token, timeout=timeout,
                                        grpc_options=KEEPALIVE)
        except MilvusException as exc:
            raise ConnectionError(
                f"no Milvus answered at {uri} ({exc.message}): start it, or set MEMEFLOW_INDEX "
                "to another server, or unset it to keep the index in the workspace"
            ) from None
        self._dim: int | None = None
        self._loaded: set[str] = set()
        self._closed = False

    # --- what it holds ----------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        if self._exists() and self._dim is None:
            schema = self._client.describe_collection(self.name)
            self._dim = next(int(field["params"]["dim"]) for field in schema["fields"]
                             if field["name"] == "vector")
        return self._dim

    @property
    def location(self) -> str:
        return f"{self.uri} (collection {self.name})"

    def count(self) -> int:
        if not self._exists():
            return 0
        found = self._client.query(self.name, filter="", output_fields=["count(*)"])
        return int(found[0]["count(*)"])

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str) or not self._exists():
            return False
        return bool(self._client.query(self.name, filter=ids_in([doc_id]),
                                       output_fields=["id"]))

    # --- writes -----------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               documents: Sequence[StoredDocument],
               frames: Sequence[Frames | None] | None = None) -> None:
        """See `Collection.upsert`. The documents first, then their frames (the old ones
        deleted, the new ones inserted): Milvus has no transaction across collections."""
        self._check_open()
        ids, documents = id_list(ids), list(documents)
        matrix = unit_vectors(vectors, "vectors")
        if not len(ids) == len(matrix) == len(documents):
            raise ValueError(f"got {len(ids)} ids, {len(matrix)} vectors, "
                             f"{len(documents)} documents")
        dim = matrix.shape[1]
        if self.dim is not None and dim != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got dimension {dim}")
        framed = unit_frames(frames, ids, dim)
        if not ids:
            return
        latest = {doc_id: i for i, doc_id in enumerate(ids)}  # the last duplicate wins
        kept = [documents[i] for i in latest.values()]
        tag_json(kept)
        valid_text(list(latest), kept)
        rows = [_row(doc_id, matrix[i], documents[i]) for doc_id, i in latest.items()]
        frame_rows = [
            {"id": row["id"], "n": n, "ms": ms, "vector": vector.tolist(),
             **{name: row[name] for name in FILTER_FIELDS}}
            for row, i in zip(rows, latest.values(), strict=True)
            if (entry := framed[i]) is not None
            for n, (ms, vector) in enumerate(zip(entry.ms, entry.vectors, strict=True))]
        if self._dim is None:
            self._create(dim)
        try:
            self._client.upsert(self.name, rows)
            if frame_rows or self._frames_exist():
                self._forget_frames(list(latest))
            if frame_rows:
                self._create_frames(dim)
                self._client.insert(self.frames_name, frame_rows)
        except MilvusException as exc:
            raise CollectionWriteError(f"Milvus at {self.uri} refused the upsert: "
                                       f"{exc.message}") from None

    def delete(self, ids: Sequence[str]) -> int:
        self._check_open()
        ids = list(dict.fromkeys(id_list(ids)))
        if not ids or not self._exists():
            return 0
        stored = [row["id"] for chunk in _chunks(ids) for row in self._client.query(
            self.name, filter=ids_in(chunk), output_fields=["id"])]
        for chunk in _chunks(stored):
            self._client.delete(self.name, filter=ids_in(chunk))
        self._forget_frames(stored)
        return len(stored)

    def clear(self) -> None:
        self._check_open()
        for name in (self.name, self.frames_name):
            if self._client.has_collection(name):
                self._client.drop_collection(name)
        self.set_model(None)  # the running model stays: the encoders serving it still run
        self._dim = None
        self._loaded.clear()

    # --- reads ------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[StoredDocument | None]:
        self._check_open()
        ids = id_list(ids)
        found = self._rows(ids, ["uri", "has_uri", "tags", "exact_tags", "words"])
        return [_document(found[doc_id]) if doc_id in found else None for doc_id in ids]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        self._check_open()
        ids = id_list(ids)
        found = self._rows(ids, ["vector"])
        missing = next((doc_id for doc_id in ids if doc_id not in found), None)
        if missing is not None:
            raise KeyError(missing)
        return np.array([found[doc_id]["vector"] for doc_id in ids],
                        dtype=np.float32).reshape(len(ids), self.dim or 0)

    def frames(self, ids: Sequence[str]) -> list[Frames | None]:
        self._check_open()
        ids = id_list(ids)
        found = self._frames_of(ids)
        return [found.get(doc_id) for doc_id in ids]

    def find(self, tag: str | None = None, values: Sequence[Any] = (),
             uri_prefix: str | None = None) -> list[str]:
        """See `Collection.find`; as the embedded backend finds them, a list tag does not
        match by its elements. In the order of the ids (Milvus keeps no order of insertion)."""
        self._check_open()
        parts = []
        if tag is not None:  # the tag's value itself, not a list tag's elements
            wanted = [value for value in values if exact_operand(value)]
            if not wanted:
                return []
            parts.append(equals_any(tag, wanted, elements=False))
        if uri_prefix is not None:
            low, high = (quoted(text)
                         for text in (uri_prefix, uri_prefix + "\U0010ffff"))
            parts.append(f"has_uri == true and uri >= {low} and uri < {high}")
        if not self._exists():
            return []
        found = self._scan(" and ".join(parts), ["uri"])
        return sorted(row["id"] for row in found
                      if uri_prefix is None or row["uri"].startswith(uri_prefix))

    # --- searches ---------------------------------------------------------------------

    def select(self, where: Where | None) -> MilvusSelection:
        compiled = compile_where(where)
        if compiled.empty:
            return MilvusSelection(where, None, empty=True)
        if not compiled.residual:
            return MilvusSelection(where, compiled.expression)
        return self._checked(where, compiled)

    def dense_search(self, queries: np.ndarray, top_k: int,
                     selection: Selection | None = None) -> list[list[Hit]]:
        self._check_open()
        if top_k <= 0:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        matrix = unit_vectors(queries, "queries")
        if self.dim is not None and matrix.shape[1] != self.dim:
            raise ValueError(f"expected queries of dimension {self.dim}, got {matrix.shape[1]}")
        expression = self._expression(selection)
        if self.dim is None or expression is False or not len(matrix):
            return [[] for _ in matrix]  # pymilvus fails on a search of no queries
        fields = ["uri", "has_uri", "tags", "exact_tags", "words", "vector"]
        framed, where = self._frames_exist(), expression if isinstance(expression, str) else ""
        results: list[list[Hit]] = [[] for _ in matrix]
        pending, limit = list(range(len(matrix))), min(MAX_LIMIT, top_k + CANDIDATE_MARGIN)
        while pending:
            found = self._client.search(
                self.name, data=matrix[pending].tolist(), anns_field="vector", limit=limit,
                filter=expression or "", search_params={"metric_type": "COSINE",
                                                        "params": {"ef": max(64, limit)}},
                output_fields=fields,
            )
            again = []
            for row, hits in zip(pending, found, strict=True):
                known = {hit["id"]: hit["entity"] for hit in hits}
                frames: dict[str, Frames] = {}
                if framed:  # documents proposed by one of their frames, scored by the best
                    proposed = self._framed_candidates(matrix[row], limit, where)
                    known.update(self._rows([i for i in proposed if i not in known], fields))
                    frames = self._frames_of(list(known))
                results[row], tied = _rescored(matrix[row], known, frames, top_k)
                # Milvus cuts a tie anywhere, the embedded backend by id: when the weakest
                # candidate ties the last hit kept, ask for twice as many.
                if tied and len(hits) == limit < MAX_LIMIT:
                    again.append(row)
            pending, limit = again, min(MAX_LIMIT, 2 * limit)
        return results

    def has_lexical(self) -> bool:
        if not self._exists():
            return False
        return bool(self._client.query(self.name, filter='grams != ""', output_fields=["id"],
                                       limit=1))

    def lexical_search(self, text: str, top_k: int, selection: Selection | None = None
                       ) -> tuple[list[LexicalMatch], bool]:
        """See `Collection.lexical_search`. Milvus ranks by BM25 over the grams; the matches
        holding under half the query's grams are dropped here, as the embedded backend
        drops them, and the candidate pool doubles until top_k are left or none remain."""
        self._check_open()
        wanted = _query_grams(text)
        expression = self._expression(selection)
        if not wanted or top_k <= 0 or expression is False or not self._exists():
            return [], True
        letters = normalise(text)
        needed = DEFAULT_MIN_COVERAGE * len(wanted)
        limit = min(MAX_LIMIT, 2 * top_k + CANDIDATE_MARGIN)
        while True:
            found = self._client.search(
                self.name, data=[" ".join(wanted)], anns_field="grams_bm25", limit=limit,
                filter=expression or "", search_params={"metric_type": "BM25"},
                output_fields=["words"],
            )[0]
            matches = []
            for hit in found:
                doc_letters = normalise(hit["entity"].get("words") or "")
                held = sum(gram in _padded(doc_letters) for gram in wanted)
                if held >= needed - 1e-9:
                    # Milvus Lite reports BM25 negated (a distance); Milvus, as a score.
                    matches.append(LexicalMatch(hit["id"], abs(float(hit["distance"])),
                                                bool(letters) and letters in doc_letters))
            exhausted = len(found) < limit
            if len(matches) > top_k or exhausted or limit >= MAX_LIMIT:
                matches.sort(key=lambda m: (not m.phrase, -m.score, m.id))
                return matches[:top_k], exhausted and len(matches) <= top_k
            limit = min(MAX_LIMIT, 2 * limit)

    # --- identity and life ------------------------------------------------------------

    def model(self) -> dict[str, Any] | None:
        self._check_open()
        return self._model_record().read()["model"]

    def set_model(self, model: dict[str, Any] | None) -> None:
        self._check_open()
        self._model_record().update(lambda meta: meta.update(model=model))

    def _model_record(self) -> MilvusModelRecord:
        return MilvusModelRecord(self._client, self.name, self.uri)

    def previews(self, workspace: Path) -> MilvusPreviews:
        """In Milvus beside the documents, whatever `workspace`: every replica serves them."""
        return MilvusPreviews(self._client, f"{self.name}_previews", self.location)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    # --- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the collection {self.location} is closed")

    def _exists(self) -> bool:
        """Whether the collection exists; asked of Milvus every time, since another indexer
        sharing it may have dropped it (`clear`) or made it (the first upsert)."""
        self._check_open()
        if not self._client.has_collection(self.name):
            self._dim = None
            self._loaded.discard(self.name)
            return False
        self._load(self.name)
        return True

    def _load(self, name: str) -> None:
        """Loads a collection this process has not searched yet: one made by an earlier
        process (a restarted indexer, a Milvus Lite file opened again) may be released,
        and Milvus searches and queries only loaded ones. Loading a loaded one is no-op."""
        if name not in self._loaded:
            self._client.load_collection(name)
            self._loaded.add(name)

    def _frames_exist(self) -> bool:
        """Whether the frames collection exists (loaded for searches when it does)."""
        if not self._client.has_collection(self.frames_name):
            self._loaded.discard(self.frames_name)
            return False
        self._load(self.frames_name)
        return True

    def _create_frames(self, dim: int) -> None:
        """The frames collection for vectors of `dim` (see the module's docstring)."""
        client = self._client
        if client.has_collection(self.frames_name):
            return
        schema = client.create_schema(auto_id=True)
        schema.add_field("key", DataType.INT64, is_primary=True)
        schema.add_field("id", DataType.VARCHAR, max_length=MAX_TEXT)
        schema.add_field("n", DataType.INT64)
        schema.add_field("ms", DataType.INT64)
        schema.add_field("tags", DataType.JSON)
        for name in ("tag_names", "valued_tags"):
            schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR,
                             max_capacity=MAX_TAGS, max_length=MAX_TAG_NAME)
        schema.add_field("numbers", DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="COSINE",
                        params={"M": 16, "efConstruction": 200})
        try:
            client.create_collection(self.frames_name, schema=schema, index_params=index,
                                     consistency_level="Strong")
        except MilvusException:
            if not client.has_collection(self.frames_name):  # another indexer made it first
                raise
        self._load(self.frames_name)

    def _forget_frames(self, ids: list[str]) -> None:
        """Deletes the frames of `ids`, if any are stored."""
        if ids and self._frames_exist():
            for chunk in _chunks(ids):
                self._client.delete(self.frames_name, filter=ids_in(chunk))

    def _frames_of(self, ids: list[str]) -> dict[str, Frames]:
        """The stored frames of those of `ids` that have some, in their order (`n`)."""
        if not ids or not self._frames_exist():
            return {}
        found: dict[str, list[dict[str, Any]]] = {}
        # A query answers at most MAX_LIMIT rows: a chunk whose frames reach that many (more
        # than 64 frames a document, MEMEFLOW_MAX_FRAMES) is asked again in halves.
        pending = list(_chunks(list(dict.fromkeys(ids)), FRAME_READ_IDS))
        while pending:
            chunk = pending.pop()
            rows = self._client.query(self.frames_name, filter=ids_in(chunk), limit=MAX_LIMIT,
                                      output_fields=["id", "n", "ms", "vector"])
            if len(rows) >= MAX_LIMIT and len(chunk) > 1:
                pending += [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
                continue
            for row in rows:
                found.setdefault(row["id"], []).append(row)
        frames = {}
        for doc_id, rows in found.items():
            rows.sort(key=lambda row: row["n"])
            frames[doc_id] = Frames(np.array([row["vector"] for row in rows], np.float32),
                                    [int(row["ms"]) for row in rows])
        return frames

    def _framed_candidates(self, query: np.ndarray, wanted: int, expression: str
                           ) -> list[str]:
        """Up to `wanted` documents whose frames come nearest `query` among those passing
        `expression`, best first: the frame search widens until that many distinct
        documents are found or no frame is left."""
        limit = min(MAX_LIMIT, 4 * wanted)
        while True:
            hits = self._client.search(
                self.frames_name, data=[query.tolist()], anns_field="vector", limit=limit,
                filter=expression, search_params={"metric_type": "COSINE",
                                                  "params": {"ef": max(64, limit)}},
                output_fields=["id"])[0]
            ids = list(dict.fromkeys(hit["entity"]["id"] for hit in hits))
            if len(ids) >= wanted or len(hits) < limit or limit >= MAX_LIMIT:
                return ids[:wanted]
            limit = min(MAX_LIMIT, 2 * limit)

    def _create(self, dim: int) -> None:
        """The collection for vectors of `dim` (see the module's docstring)."""
        client = self._client
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_TEXT)
        schema.add_field("uri", DataType.VARCHAR, max_length=MAX_TEXT)
        schema.add_field("has_uri", DataType.BOOL)
        schema.add_field("tags", DataType.JSON)
        schema.add_field("exact_tags", DataType.VARCHAR, max_length=MAX_TEXT)
        for name in ("tag_names", "valued_tags"):
            schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR,
                             max_capacity=MAX_TAGS, max_length=MAX_TAG_NAME)
        schema.add_field("numbers", DataType.JSON)
        schema.add_field("words", DataType.VARCHAR, max_length=MAX_TEXT, nullable=True)
        schema.add_field("grams", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field("grams_bm25", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_function(Function(name="grams_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["grams"],
                                     output_field_names=["grams_bm25"]))
        index = client.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="COSINE",
                        params={"M": 16, "efConstruction": 200})
        index.add_index("grams_bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params={"bm25_k1": 1.2, "bm25_b": 0.75})
        try:  # Strong: a search sees every write acknowledged before it (index, then search)
            client.create_collection(self.name, schema=schema, index_params=index,
                                     consistency_level="Strong")
        except MilvusException:
            if not client.has_collection(self.name):
                raise
            # another indexer sharing the collection made it first: it must hold `dim`
            if self.dim != dim:
                raise ValueError(f"expected vectors of dimension {self.dim}, got dimension "
                                 f"{dim}") from None
        self._dim = dim

    def _expression(self, selection: Selection | None) -> str | bool | None:
        """The selection's expression; False when it selects nothing."""
        if selection is None:
            return None
        if selection.empty:
            return False
        if isinstance(selection, MilvusSelection):
            return selection.expression
        return self.select(selection.where).expression  # another backend's: compile it

    def _rows(self, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        if not ids or not self._exists():
            return {}
        return {row["id"]: row for chunk in _chunks(list(dict.fromkeys(ids)))
                for row in self._client.query(self.name, filter=ids_in(chunk),
                                              output_fields=fields)}

    def _scan(self, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row passing `expression` ("" : all), READ_BATCH at a time in id order, as
        pymilvus's query iterator pages; it puts the last id into the next expression
        unquoted, which an id holding a quote or a backslash breaks, so the paging is here."""
        rows: list[dict[str, Any]] = []
        while True:
            after = f"id > {quoted(rows[-1]['id'])}" if rows else ""
            batch = self._client.query(
                self.name, filter=" and ".join(f"({part})" for part in (after, expression)
                                               if part),
                output_fields=fields, limit=READ_BATCH, iterator="True",
                reduce_stop_for_best="True")
            rows.extend(batch)
            if len(batch) < READ_BATCH:
                return rows

    def _checked(self, where: Where | None, compiled: MilvusFilter) -> MilvusSelection:
        """A selection with conditions Milvus cannot say: the documents the expression
        leaves are checked here on their stored tags, and selected by id."""
        if not self._exists():
            return MilvusSelection(where, None, empty=True)
        rows = self._scan(compiled.expression or "", ["tags", "exact_tags"])
        passing = [row["id"] for row in rows
                   if all(c.matches(_tags(row)) for c in compiled.residual)]
        if not passing:
            return MilvusSelection(where, None, empty=True)
        return MilvusSelection(where, ids_in(passing))


def _padded(letters: str) -> str:
    """The text the grams are looked for in: short texts padded as they are stored."""
    return letters.rjust(GRAM, PAD) if 0 < len(letters) < GRAM else letters


def _chunks(ids: list[str], size: int = READ_BATCH) -> Iterable[list[str]]:
    return (ids[i : i + size] for i in range(0, len(ids), size))


def _text(value: str, what: str, doc_id: str) -> str:
    """`value`, or ValueError when it is longer than a Milvus VARCHAR holds."""
    size = len(value.encode("utf-8"))  # checks.valid_text made sure it encodes
    if size > MAX_TEXT:
        raise ValueError(f"document {printable(doc_id)}: its {what} is {size} bytes, Milvus "
                         f"keeps at most {MAX_TEXT}")
    return value


def _row(doc_id: str, vector: np.ndarray, document: StoredDocument) -> dict[str, Any]:
    """The Milvus row of one document; ValueError for what the collection cannot hold."""
    tags = document.get("tags") or {}
    exact = json.dumps(tags, ensure_ascii=False)  # checks.tag_json made sure it can
    fields = filter_fields(tags)
    if len(tags) > MAX_TAGS or any(len(tag.encode("utf-8", "replace")) > MAX_TAG_NAME
                                   for tag in tags):
        raise ValueError(f"document {printable(doc_id)}: Milvus keeps at most {MAX_TAGS} tags "
                         f"of names up to {MAX_TAG_NAME} bytes")
    words = document.get("words")
    uri = document.get("uri")
    grams_of = gram_text(words)
    return {
        "id": _text(doc_id, "id", doc_id),
        "uri": _text(uri or "", "uri", doc_id),
        "has_uri": uri is not None,
        **fields,
        # the exact tags when the JSON field could not hold them (NaN, ints beyond 64 bits)
        "exact_tags": (_text(exact, "tags", doc_id)
                       if json.dumps(fields["tags"], ensure_ascii=False) != exact else ""),
        "words": None if words is None else _text(words, "words", doc_id),
        "grams": grams_of,
        "vector": vector.tolist(),
    }


def _tags(row: dict[str, Any]) -> dict[str, Any]:
    exact = row.get("exact_tags")
    return json.loads(exact) if exact else dict(row.get("tags") or {})


def _document(row: dict[str, Any]) -> StoredDocument:
    document = StoredDocument(uri=row["uri"] if row.get("has_uri") else None, tags=_tags(row))
    if row.get("words") is not None:
        document["words"] = row["words"]
    return document


def _rescored(query: np.ndarray, entities: dict[str, dict[str, Any]],
              frames: dict[str, Frames], top_k: int) -> tuple[list[Hit], bool]:
    """The best top_k of the candidates (stored rows by id) by exact cosine (float64 from
    the stored float32 vectors, as the embedded backend scores; a document with frames
    scores its best frame, the first of equals), ties by id; and whether the weakest
    candidate scores exactly as the last one kept (a document Milvus left out may tie them
    too)."""
    if not entities:
        return [], False
    ids = list(entities)
    query64 = query.astype(np.float64)
    vectors = np.array([entities[doc_id]["vector"] for doc_id in ids], dtype=np.float32)
    scores = (vectors.astype(np.float64) * query64).sum(axis=1)
    best_ms: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if (entry := frames.get(doc_id)) is not None:
            frame_scores = (entry.vectors.astype(np.float64) * query64).sum(axis=1)
            best = int(np.argmax(frame_scores))
            scores[i] = max(scores[i], frame_scores[best])
            best_ms[doc_id] = entry.ms[best]
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:top_k]
    tied = bool(scores.min() == scores[order[-1]])
    ranked = []
    for i in order:
        entity = entities[ids[i]]
        hit = Hit(id=ids[i], score=min(float(scores[i]), 1.0),
                  uri=entity["uri"] if entity.get("has_uri") else None, tags=_tags(entity))
        if entity.get("words") is not None:
            hit["words"] = entity["words"]
        if ids[i] in best_ms:
            hit["frame_ms"] = best_ms[ids[i]]
        ranked.append(hit)
    return ranked, tied

