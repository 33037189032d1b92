"""The meme index: upsert, cosine search fused with the words on memes, filters, delete.
The executor talks to a `Collection` (`memeflow.indexer.backends`), its `Previews` and the
record of its model (`memeflow.model_record`), and knows nothing of how they are kept:
files in the workspace (the default) or Milvus."""

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from docarray import DocList
from jina import requests

from memeflow import config, params
from memeflow.documents import MatchDoc, MemeDoc, TermDoc, is_id_only
from memeflow.indexer.backends import (
    Collection,
    Frames,
    StoredDocument,
    is_milvus,
    open_collection,
)
from memeflow.indexer.backends.checks import unit_frames
from memeflow.indexer.backends.previews import Previews
from memeflow.indexer.derived import keep_derived, keep_frames
from memeflow.indexer.rank import rank_candidates
from memeflow.indexer.search.options import SearchOptions
from memeflow.indexer.search.pipeline import search_collection
from memeflow.indexer.shards import shard_of
from memeflow.model_record import ModelRecord, model_record
from memeflow.moved_workspace import record_move
from memeflow.query import resolve_query_parts
from memeflow.refusals import RefusingExecutor
from memeflow.switch import PendingSwitch, SwitchError, phase_of, target_of
from memeflow.vectors import check_own_vector
from memeflow.workspace import bind_running_model, open_workspace, unbind_model


class _Opened(NamedTuple):
    """A workspace opened beside the serving one (/switch)."""

    root: Path
    path: Path
    collection: Collection
    previews: Previews
    record: ModelRecord  # of the model of the vectors


def _close(opened: _Opened) -> None:
    opened.collection.close()
    opened.record.close()


class QueryDimensionError(params.RequestError):
    """A query vector of another length than the stored ones: the client's mistake (the
    encoder makes vectors of the index's length), so the gateway answers it with a 400."""


class MemeIndexer(RefusingExecutor):
    """Stores documents in a collection and searches it (`memeflow.indexer.search`).

    Settings (`uses_with:` in flow.yml):
    - workspace: the folder of the index (MEMEFLOW_WORKSPACE overrides; default
      ~/.local/share/memeflow/index). With `shards: N` each shard keeps `shard-I-of-N` in it.
    - index: where the documents live (MEMEFLOW_INDEX overrides): unset, the workspace;
      `http://HOST:19530` or a Milvus Lite `*.db` file, Milvus.
    - collection: the collection's name in Milvus (MEMEFLOW_COLLECTION overrides).
    - exact_max: beyond this many documents (per shard) the embedded backend asks an HNSW
      graph for candidates instead of scanning every row (approximate; default 200,000).
    """

    def __init__(self, workspace: str | None = None, exact_max: int | None = None,
                 index: str | None = None, collection: str | None = None, **kwargs: Any
                 ) -> None:
        super().__init__(**kwargs)
        # With `shards: N` every shard sees every request and keeps the ids it owns.
        self.shard_id = getattr(self.runtime_args, "shard_id", 0) or 0
        self.shards = getattr(self.runtime_args, "shards", 1) or 1
        self._index, self._collection_name = config.index(index), config.collection_name(collection)
        self._exact_max = None if exact_max is None else int(exact_max)
        self.root, self.path, self.collection, self.previews, self.record = self._open(
            config.workspace(workspace))
        self._switch: PendingSwitch[_Opened] = PendingSwitch()
        self._switch_model = ""  # the model of the workspace being prepared
        self.max_docs = config.max_docs()  # /upsert skips the encoder and its limits
        self.logger.info(f"index at {self.collection.location}: {len(self.collection)} documents")

    def _open(self, root: Path) -> "_Opened":
        """The workspace `root` (this shard's folder of it) opened: its collection, the
        previews and the record of the model (the collection's own, with a Milvus server)."""
        open_workspace(root)  # refuses one of a newer memeflow, migrates an older one
        path = root / f"shard-{self.shard_id}-of-{self.shards}" if self.shards > 1 else root
        collection = open_collection(path, index=self._index, collection=self._collection_name,
                                     exact_max=self._exact_max)
        try:
            record = model_record(root, self._index, self._collection_name)
        except BaseException:
            collection.close()
            raise
        return _Opened(root, path, collection, collection.previews(path), record)

    @requests(on="/switch")
    def switch(self, docs: DocList[MemeDoc], parameters: dict, **kwargs: Any
               ) -> DocList[MemeDoc]:
        """Another workspace, opened beside the one serving and swapped in at commit
        (memeflow.switch); adds an `indexer` tag saying how far it got."""
        phase = phase_of(parameters)
        state = phase
        if phase == "prepare":
            if self.shards > 1:
                raise SwitchError("a sharded index cannot switch workspaces while serving: "
                                  "serve the new workspace with the same shards instead")
            if self._index is not None:
                raise SwitchError("the documents live outside the workspace (MEMEFLOW_INDEX): "
                                  "switching moves the embedded index only; index into a new "
                                  "collection with the new model instead")
            self._switch_model, workspace = target_of(parameters)
            self._switch.prepare(lambda: self._open(Path(workspace)), _close)
        elif phase == "commit":
            old, old_root, old_record = self.collection, self.root, self.record
            self.root, self.path, self.collection, self.previews, self.record = (
                self._switch.take())
            old.close()  # lets another process open the workspace this one served
            old_record.close()
            self.logger.info(f"switched to the index at {self.collection.location}: "
                             f"{len(self.collection)} documents")
            state = self._record_move(old_root)
        elif phase == "abort":
            self._switch.abort(_close)
        if phase in ("prepare", "poll"):
            state = self._switch.state()
        reply = docs[0] if docs else MemeDoc()
        reply.tags["indexer"] = state
        return DocList[MemeDoc]([reply])

    def _record_move(self, old_root: Path) -> str:
        """The commit's state: `committed`, the move recorded beside the old workspace for
        `memeflow serve` to follow (memeflow.moved_workspace); or, when the record cannot
        be written, `committed; not recorded: REASON` (the switch itself stands)."""
        try:
            record = record_move(old_root, self.root, self._switch_model)
        except OSError as exc:
            self.logger.error(f"the move to {self.root} is not recorded: {exc}")
            return f"committed; not recorded: {exc}"
        self.logger.info(f"recorded the move from {old_root} in {record}")
        return "committed"

    def _owns(self, doc: MemeDoc) -> bool:
        if self.shards == 1:
            return True
        assert doc.id is not None  # asked only of documents that have an id
        return shard_of(doc.id, self.shards) == self.shard_id

    def _storable(self, doc: MemeDoc, dim: int | None) -> bool:
        """Only documents with a usable vector are stored; the others say why in `error`."""
        if doc.error:
            return False
        if doc.embedding is None:
            doc.error = (
                "document has no embedding: send it to /index to have one made, or bring one"
            )
            return False
        check_own_vector(doc, dim)
        if doc.error is None and (doc.frames is not None or doc.frame_ms is not None):
            self._check_frames(doc, dim or np.shape(doc.embedding)[0])
        return doc.error is None

    @staticmethod
    def _check_frames(doc: MemeDoc, dim: int) -> None:
        """A document's frames must come with their times, one per frame, and be `dim`-d
        vectors with a direction; otherwise its `error` says what to send."""
        if doc.frames is None or doc.frame_ms is None:
            given, missing = ("frames", "frame_ms") if doc.frame_ms is None else (
                "frame_ms", "frames")
            doc.error = (f"document {doc.id}: it has {given} but no {missing}: send both (the "
                         "(k, dim) frame embeddings and their k times in ms), or neither")
            return
        try:
            unit_frames([Frames(np.asarray(doc.frames), list(doc.frame_ms))], [doc.id or ""],
                        dim)
        except ValueError as exc:
            doc.error = f"{exc}: send the embeddings of its frames as the encoder makes them"

    @requests(on=["/index", "/upsert"])
    def index(self, docs: DocList[MemeDoc], parameters: dict, **kwargs: Any) -> DocList[MemeDoc]:
        """Store documents by id. `/upsert` reaches only this executor (the encoder does not
        bind it): the fast path for documents that bring their own embedding."""
        params.check_request_size(len(docs), self.max_docs)
        keep_vectors = params.flag(parameters, "return_embeddings")  # refused before storing
        dim_before = dim = self.collection.dim
        valid = []
        for doc in docs:
            if self._storable(doc, dim) and self._owns(doc):
                assert doc.embedding is not None and doc.id is not None  # _storable made sure
                valid.append(doc)
                dim = dim or np.shape(doc.embedding)[0]  # an empty index takes the first one's
        if valid:
            with self.monitor("index_seconds", "Time to store a request's vectors"):
                ids: list[str] = [doc.id for doc in valid]  # type: ignore[misc]  # asserted above
                vectors = np.stack([np.asarray(doc.embedding, dtype=np.float32) for doc in valid])
                sent = [StoredDocument(uri=doc.uri, tags=doc.tags, words=doc.words)
                        for doc in valid]
                frames = keep_frames(  # a re-filed video keeps its frames
                    ids, vectors, sent, [_frames(doc) for doc in valid],
                    self.collection.frames, self._stored_records)
                # a re-filed picture keeps its hash, hubness, words
                records = keep_derived(ids, vectors, sent, self._stored_records)
                self.collection.upsert(ids, vectors, records, frames)
            if self.collection.dim != dim_before:  # the first vectors: the index takes a model
                self.collection.set_model(self.record.update(bind_running_model).get("model"))
            # A document re-indexed from a bare vector loses its old preview; of one id sent
            # twice, the last one counts (as in the collection).
            latest = {doc_id: doc.thumbnail for doc_id, doc in zip(ids, valid, strict=True)}
            self.previews.put_many({doc_id: data for doc_id, data in latest.items() if data})
            self.previews.delete([doc_id for doc_id, data in latest.items() if not data])
        for doc in docs:
            doc.thumbnail = None
            if not keep_vectors:
                doc.embedding = doc.frames = doc.frame_ms = None
        return docs

    def _use_stored_vector(self, doc: MemeDoc) -> None:
        """A query with only an id searches with that indexed document's vector."""
        assert doc.id is not None  # search() sends only documents that have one
        if doc.id in self.collection:
            doc.embedding = self.collection.vectors([doc.id])[0]
        elif self._owns(doc):
            doc.error = (
                f"no indexed document has id {doc.id!r}: search by text or image, "
                "or index the document first"
            )

    @requests(on="/search")
    def search(self, docs: DocList[MemeDoc], parameters: dict, **kwargs: Any) -> DocList[MemeDoc]:
        options = SearchOptions.from_parameters(parameters)
        with_vectors = params.flag(parameters, "return_embeddings")
        for doc in docs:
            if doc.terms and not doc.error:  # a combined query with terms naming indexed ids
                resolve_query_parts(doc, self._stored_vectors)
            elif not doc.error and doc.embedding is None and doc.id:
                self._use_stored_vector(doc)
            doc.terms = DocList[TermDoc]()
        queries = [doc for doc in docs if not doc.error and doc.embedding is not None]
        if queries and self.collection.dim is not None:
            matrix = np.stack([np.asarray(doc.embedding, dtype=np.float32) for doc in queries])
            if matrix.shape[1] != (dim := self.collection.dim):
                raise QueryDimensionError(
                    f"query embedding is {matrix.shape[1]}-d but the index holds "
                    f"{dim}-d vectors: send a {dim}-d embedding, or "
                    "leave `embedding` empty to have the query encoded"
                )
            with self.monitor("search_seconds", "Time to search the index"):
                # A query's text is matched against the words on the memes too. A shard
                # leaves paging to the merger, which pages the union.
                results = search_collection(self.collection, matrix, options,
                                            paged=self.shards == 1,
                                            texts=[doc.text for doc in queries])
            for doc, hits in zip(queries, results, strict=True):
                doc.matches = DocList[MatchDoc]([MatchDoc(**hit) for hit in hits])
                if with_vectors and hits:
                    vectors = self.collection.vectors([hit["id"] for hit in hits])
                    for match, vector in zip(doc.matches, vectors, strict=True):
                        match.embedding = vector
        if not with_vectors:
            for doc in docs:
                doc.embedding, doc.frames, doc.frame_ms = None, None, None
        return docs

    @requests(on="/rank")
    def rank(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """Candidate texts by probability (memeflow.rank); an id's image is the stored one.
        With shards, only the shard owning an id answers for it (the merger picks it)."""
        for doc in docs:
            if not (is_id_only(doc) and not doc.error and not self._owns(doc)):
                rank_candidates(doc, lambda doc_id: self._stored_vectors([doc_id])[0])
        return docs

    def _stored_vectors(self, ids: list[str]) -> list[np.ndarray | None]:
        return [self.collection.vectors([i])[0] if i in self.collection else None for i in ids]

    def _stored_records(self, ids: list[str]) -> list[tuple[StoredDocument, np.ndarray] | None]:
        """The stored document and unit vector of each id; None for one not stored."""
        return [None if stored is None else (stored, self.collection.vectors([doc_id])[0])
                for doc_id, stored in zip(ids, self.collection.get(ids), strict=True)]

    @requests(on="/delete")
    def delete(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        ids: list[str] = [doc.id for doc in docs if doc.id and self._owns(doc)]
        removed = self.collection.delete(ids)
        self.previews.delete(ids)
        return DocList[MemeDoc]([MemeDoc(tags={"deleted": removed, "count": len(self.collection)})])

    @requests(on="/get")
    def get(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """The stored uri, tags and words of the given ids; ids not in the index are left out."""
        ids = [doc.id for doc in docs if doc.id]
        return DocList[MemeDoc](
            [
                MemeDoc(id=doc_id, uri=record["uri"], tags=record["tags"],
                        words=record.get("words"))
                for doc_id, record in zip(ids, self.collection.get(ids), strict=True)
                if record is not None
            ]
        )

    @requests(on="/thumbnail")
    def thumbnail(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """The preview of each given id that is indexed and has one (for the gateway)."""
        ids = [doc.id for doc in docs if doc.id]
        stored = [doc_id for doc_id, record in zip(ids, self.collection.get(ids), strict=True)
                  if record is not None]
        previews = self.previews.get_many(stored)
        return DocList[MemeDoc]([MemeDoc(id=doc_id, thumbnail=previews[doc_id])
                                 for doc_id in stored if previews.get(doc_id)])

    @requests(on="/find")
    def find(self, docs: DocList[MemeDoc], parameters: dict, **kwargs: Any) -> DocList[MemeDoc]:
        """Stored documents by content instead of id: with `tag`, those whose tag equals that
        tag of one of the given documents (e.g. `sha256`); with `uri_prefix`, those whose uri
        starts with it. Embeddings (and frames with their times) only with
        `return_embeddings`."""
        tag = params.text(parameters, "tag")
        with_vectors = params.flag(parameters, "return_embeddings")
        ids = self.collection.find(tag, [doc.tags.get(tag) for doc in docs] if tag else (),
                              params.text(parameters, "uri_prefix"))
        found = DocList[MemeDoc](
            [MemeDoc(id=i, uri=r["uri"], tags=r["tags"], words=r.get("words"))
             for i, r in zip(ids, self.collection.get(ids), strict=True)
             if r is not None]  # find() returns stored ids only: none is left out
        )
        if ids and with_vectors:
            for doc, vector, frames in zip(found, self.collection.vectors(ids),
                                           self.collection.frames(ids), strict=True):
                doc.embedding = vector
                if frames is not None:
                    doc.frames, doc.frame_ms = frames.vectors, frames.ms  # type: ignore[assignment]  # pydantic: an NdArray
        return found

    @requests(on="/status")
    def status(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """Adds what the index knows to the encoder's status document: where the documents
        live is `workspace` (a folder), or `index` (a Milvus server's URI and collection)."""
        status = docs[0] if docs else MemeDoc()
        status.tags.update(count=len(self.collection), dim=self.collection.dim,
                           shards=self.shards)
        if self._index is not None and is_milvus(self._index):
            status.tags["index"] = self.collection.location
        else:
            status.tags["workspace"] = str(self.path)
        return DocList[MemeDoc]([status])

    @requests(on="/count")
    def count(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        tags = {"count": len(self.collection), "dim": self.collection.dim}
        return DocList[MemeDoc]([MemeDoc(tags=tags)])

    @requests(on="/clear")
    def clear(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        self.collection.clear()
        self.previews.clear()
        self.record.update(unbind_model)  # an empty index takes any model
        self.collection.set_model(None)
        return DocList[MemeDoc]([MemeDoc(tags={"count": 0})])

    def close(self) -> None:
        self._switch.abort(_close)
        self.collection.close()
        self.record.close()
        super().close()


def _frames(doc: MemeDoc) -> Frames | None:
    """The frames a document brings (checked by `_check_frames`), None for a still."""
    if doc.frames is None or doc.frame_ms is None:
        return None
    return Frames(np.asarray(doc.frames, dtype=np.float32), list(doc.frame_ms))
