"""Combined queries inside the Flow: the encoder embeds each term of a document's `terms`,
the indexer fills in terms naming indexed ids, and either combines them into the query
vector (`memeflow.query.combine`)."""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from docarray import DocList

from memeflow.access import AccessPolicy
from memeflow.docs import MemeDoc, TermDoc, is_id_only
from memeflow.encoding import embed_documents
from memeflow.images import describe_source
from memeflow.model import ClipModel
from memeflow.query import combine


def _label(position: int, term: TermDoc) -> str:
    what = term.text if term.text else describe_source(term.uri, term.blob) if (
        term.uri or term.blob is not None) else f"id {term.id}"
    return f"term {position} ({what})"


def embed_terms(
    model: ClipModel, docs: Sequence[MemeDoc], pool: ThreadPoolExecutor, batch_size: int,
    policy: AccessPolicy | None = None,
) -> None:
    """Embed the text and image terms of combined-query documents, and combine them where
    no term needs the index (the indexer finishes the others: `resolve_terms`)."""
    pending: list[tuple[MemeDoc, int, TermDoc, MemeDoc]] = []
    for doc in docs:
        if doc.error or not doc.terms:
            continue
        for position, term in enumerate(doc.terms, start=1):
            if not np.isfinite(term.weight):
                doc.error = f"{_label(position, term)}: weight must be a finite number"
            elif not is_id_only(term):
                probe = MemeDoc(text=term.text, uri=term.uri, blob=term.blob,
                                embedding=term.embedding)
                pending.append((doc, position, term, probe))
    embed_documents(model, [probe for *_, probe in pending], pool, batch_size, policy)
    for doc, position, term, probe in pending:
        term.blob, term.embedding = None, probe.embedding
        if term.uri and term.uri.startswith("data:"):
            term.uri = None
        if probe.error and not doc.error:
            doc.error = f"{_label(position, term)}: {probe.error}"
    for doc in docs:
        if doc.terms and not doc.error and not any(is_id_only(t) for t in doc.terms):
            resolve_terms(doc, lambda ids: [])


def resolve_terms(doc: MemeDoc, vectors_of: Callable[[list[str]], Sequence[np.ndarray | None]]
                  ) -> None:
    """Fill id terms with stored vectors (`vectors_of(ids)`, None for an unknown id), then
    set the document's embedding to the combined query; the terms are not sent back."""
    ids = [term.id for term in doc.terms if is_id_only(term)]
    stored = dict(zip(ids, vectors_of(ids), strict=True))
    for position, term in enumerate(doc.terms, start=1):
        if is_id_only(term):
            if stored.get(term.id) is None:
                doc.error = (f"{_label(position, term)}: no meme with this id is indexed; "
                             "index it first or use its file as the term")
                return
            term.embedding = stored[term.id]
    try:
        doc.embedding = combine(np.stack([np.asarray(t.embedding) for t in doc.terms]),
                                [t.weight for t in doc.terms])
    except ValueError as exc:
        doc.error = str(exc)
    doc.terms = DocList[TermDoc]()

