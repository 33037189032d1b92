"""Both backends for the behaviour tests that must give the same answers on each: the
embedded one (in memory) and Milvus (Milvus Lite's server of the session, `milvus_uri`).

A test takes the `kind` of backend as a parameter (`BACKENDS`) and opens an empty
collection of it with `opened`; a module that searches one fixed set of documents fills
one collection per backend in a module-scoped fixture, since a Milvus collection costs
about a second to make and drop."""

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import EmbeddedCollection

BACKENDS = ["embedded", "milvus"]


def milvus_only(reason: str, raises: type[Exception] = AssertionError) -> Any:
    """The `milvus` parameter of a behaviour Milvus does not share (README, "Documents in
    Milvus"), expected to fail for `reason` by raising `raises`: strict, so a Milvus that
    starts to match fails the test until the mark and the README line go."""
    return pytest.param("milvus", marks=pytest.mark.xfail(strict=True, reason=reason,
                                                          raises=raises))


@contextlib.contextmanager
def opened(kind: str, request: pytest.FixtureRequest, **embedded: Any
           ) -> Iterator[Collection]:
    """An empty collection of backend `kind` ("embedded" or "milvus"), cleared and closed
    after. `embedded`: keyword arguments of `EmbeddedCollection` (e.g. `exact_max`); the
    Milvus collection has a name no other test uses."""
    collection: Collection
    if kind == "embedded":
        collection = EmbeddedCollection(**embedded)
    else:
        from memeflow.indexer.backends.milvus import MilvusCollection

        collection = MilvusCollection(request.getfixturevalue("milvus_uri"),
                                      collection=f"t_{uuid.uuid4().hex}")
    try:
        yield collection
    finally:
        collection.clear()
        collection.close()
