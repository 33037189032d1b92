"""Weighted query parts in the indexer: parts that name an indexed id get its stored vector,
then the parts are combined into the query vector (`memeflow.query.combine`)."""

from collections.abc import Callable, Sequence

import numpy as np
from docarray import DocList

from memeflow.documents import MemeDoc, TermDoc, is_id_only
from memeflow.query import combine, part_label


def resolve_query_parts(
    doc: MemeDoc, vectors_of: Callable[[list[str]], Sequence[np.ndarray | None]]
) -> None:
    """Fill id terms with stored vectors (`vectors_of(ids)`, None for an unknown id), then
    set the document's embedding to the combined query; the terms are not sent back."""
    ids: list[str] = [term.id for term in doc.terms if term.id and is_id_only(term)]
    stored = dict(zip(ids, vectors_of(ids), strict=True))
    for position, term in enumerate(doc.terms, start=1):
        if is_id_only(term):
            assert term.id is not None  # is_id_only: it has one
            if stored.get(term.id) is None:
                doc.error = (f"{part_label(position, term)}: no meme with this id is indexed; "
                             "index it first or use its file as the term")
                return
            term.embedding = stored[term.id]  # type: ignore[assignment]  # pydantic: an NdArray
    try:
        # pydantic validates the assignment: the ndarray becomes an NdArray.
        doc.embedding = combine(np.stack([np.asarray(t.embedding) for t in doc.terms]),  # type: ignore[assignment]
                                [t.weight for t in doc.terms])
    except ValueError as exc:
        doc.error = str(exc)
    doc.terms = DocList[TermDoc]()
