"""The candidate rows: the documents a filter lets through, compiled once by the
collection (the tag indexes of the embedded backend, a boolean expression for Milvus) and
searched by both signals, so a rare tag still yields every match it has."""

from memeflow.indexer.backends.base import Collection, Selection
from memeflow.indexer.filters import Where


def select(collection: Collection, where: Where | None) -> Selection:
    """Every document when `where` is None."""
    return collection.select(where)
