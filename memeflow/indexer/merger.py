"""Merges the replies of a sharded indexer (`uses_after`) into what one shard would say.

`docs` declares the document type; the shards' replies arrive in `docs_matrix`.
"""

from typing import Any

from docarray import DocList
from jina import requests

from memeflow.documents import MemeDoc
from memeflow.indexer.search.options import SearchOptions
from memeflow.indexer.shards import merge_matches, shard_of
from memeflow.refusals import RefusingExecutor

Replies = list[DocList[MemeDoc]]


class ShardMerger(RefusingExecutor):
    """Jina's default reduce would concatenate the shards' match lists, unsorted."""

    @requests(on="/search")
    def search(self, docs: DocList[MemeDoc], docs_matrix: Replies, parameters: dict, **kwargs: Any
               ) -> DocList[MemeDoc]:
        options = SearchOptions.from_parameters(parameters)
        merged = docs_matrix[0]
        for position, doc in enumerate(merged):
            doc.matches = merge_matches([shard[position].matches for shard in docs_matrix], options)
        return merged

    @requests(on="/rank")
    def rank(self, docs: DocList[MemeDoc], docs_matrix: Replies, **kwargs: Any) -> DocList[MemeDoc]:
        """Every shard ranks what it can alike; an id's image only its owner knows."""
        return DocList[MemeDoc]([
            docs_matrix[shard_of(doc.id, len(docs_matrix)) if doc.id else 0][position]
            for position, doc in enumerate(docs_matrix[0])
        ])

    @requests(on="/index")
    def index(self, docs: DocList[MemeDoc], docs_matrix: Replies, **kwargs: Any
              ) -> DocList[MemeDoc]:
        """Each document's error comes from its own shard; the others left it untouched."""
        merged = docs_matrix[0]
        for position, doc in enumerate(merged):
            doc.error = next((s[position].error for s in docs_matrix if s[position].error), None)
        return merged

    @requests(on=["/count", "/delete", "/clear"])
    def totals(self, docs: DocList[MemeDoc], docs_matrix: Replies, **kwargs: Any
               ) -> DocList[MemeDoc]:
        tags = [shard[0].tags for shard in docs_matrix]
        summed = {key: sum(t.get(key) or 0 for t in tags) for key in ("count", "deleted")}
        dims = {t.get("dim") for t in tags} - {None}
        summed["dim"] = dims.pop() if dims else None
        return DocList[MemeDoc]([MemeDoc(tags=summed)])

    @requests(on="/status")
    def status(self, docs: DocList[MemeDoc], docs_matrix: Replies, **kwargs: Any
               ) -> DocList[MemeDoc]:
        """One status: the first shard's, with the count of all and each shard's workspace."""
        tags = dict(docs_matrix[0][0].tags)
        tags["count"] = sum(shard[0].tags.get("count") or 0 for shard in docs_matrix)
        tags["workspace"] = [shard[0].tags.get("workspace") for shard in docs_matrix]
        return DocList[MemeDoc]([MemeDoc(tags=tags)])

    @requests(on=["/get", "/thumbnail", "/find", "/switch"])
    def get(self, docs: DocList[MemeDoc], docs_matrix: Replies, **kwargs: Any) -> DocList[MemeDoc]:
        return DocList[MemeDoc]([doc for shard in docs_matrix for doc in shard])
