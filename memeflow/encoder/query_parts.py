"""Weighted query parts in the encoder: each text and image part of a document's `terms` is
embedded; parts naming an indexed id are left to the indexer
(`memeflow.query.resolve_query_parts`), which combines them."""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from memeflow.documents import MemeDoc, TermDoc, is_id_only
from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.pipeline import embed_documents
from memeflow.encoder.text_model import EncoderModel
from memeflow.query import part_label, resolve_query_parts
from memeflow.uris import is_data_uri


def embed_query_parts(
    model: EncoderModel, docs: Sequence[MemeDoc], pool: ThreadPoolExecutor, batch_size: int,
    policy: AccessPolicy | None = None,
) -> None:
    """Embed the text and image terms of combined-query documents, and combine them where
    no term needs the index (the indexer finishes the others: `resolve_query_parts`)."""
    pending: list[tuple[MemeDoc, int, TermDoc, MemeDoc]] = []
    for doc in docs:
        if doc.error or not doc.terms:
            continue
        for position, term in enumerate(doc.terms, start=1):
            if not np.isfinite(term.weight):
                doc.error = f"{part_label(position, term)}: weight must be a finite number"
            elif not is_id_only(term):
                probe = MemeDoc(text=term.text, uri=term.uri, blob=term.blob,
                                embedding=term.embedding)
                pending.append((doc, position, term, probe))
    embed_documents(model, [probe for *_, probe in pending], pool, batch_size, policy)
    for doc, position, term, probe in pending:
        term.blob, term.embedding = None, probe.embedding
        if is_data_uri(term.uri):
            term.uri = None
        if probe.error and not doc.error:
            doc.error = f"{part_label(position, term)}: {probe.error}"
    for doc in docs:
        if doc.terms and not doc.error and not any(is_id_only(t) for t in doc.terms):
            resolve_query_parts(doc, lambda ids: [])
