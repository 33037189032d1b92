"""Finding stored documents by what they hold rather than by id: the indexer's `/find`.

The client uses it to recognise a moved or copied file by its content hash (the `sha256`
tag) and to list the documents under a folder when pruning deleted files.
"""

from collections.abc import Callable, Iterable
from typing import Any

from memeflow.indexer.store import Record


def record_filter(
    tag: str | None = None, values: Iterable[Any] = (), uri_prefix: str | None = None
) -> Callable[[Record], bool]:
    """A test for stored records: tag `tag` equal to one of `values` (when `tag` is given)
    and a uri starting with `uri_prefix` (when given). Values are compared as a set, so one
    scan answers a thousand content hashes."""
    wanted = {value for value in values if isinstance(value, str | int | float | bool)}

    def keep(record: Record) -> bool:
        if uri_prefix is not None and not (record["uri"] or "").startswith(uri_prefix):
            return False
        if tag is None:
            return True
        value = record["tags"].get(tag)
        return isinstance(value, str | int | float | bool) and value in wanted

    return keep
