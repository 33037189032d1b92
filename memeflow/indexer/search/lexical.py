"""The lexical candidates: the memes whose words (read on them by OCR) match a text query.

They are scored against the query vector like any dense hit (the score a user sees is
always the cosine); their lexical score, with PHRASE_BONUS for a whole quoted caption, is
what the fusion ranks them by.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memeflow.documents import Hit
from memeflow.indexer.backends.base import Collection, Selection

PHRASE_BONUS = 1000.0  # a quoted caption outranks any partial match


@dataclass(frozen=True)
class LexicalCandidates:
    """One text's lexical signal: (id, words_score) best first; hits of the memes it found
    that the dense pool lacks; and whether no further match exists."""

    ranking: list[tuple[str, float]]
    hits: list[Hit]
    done: bool


def candidates(collection: Collection, query: np.ndarray, text: str | None, pool: int,
               selection: Selection, dense: Sequence[Hit]) -> LexicalCandidates | None:
    """The best `pool` matches of `text` among the selection (None without a text), and
    the hits, scored against the unit `query` ((dim,)), of those not among `dense`."""
    if text is None:
        return None
    if selection.empty:
        return LexicalCandidates([], [], True)
    found, done = collection.lexical_search(text, pool, selection)
    ranking = [(m.id, m.score + (PHRASE_BONUS if m.phrase else 0.0)) for m in found]
    pooled = {hit["id"] for hit in dense}
    missing = [doc_id for doc_id, _ in ranking if doc_id not in pooled]
    hits: list[Hit] = []
    if missing:
        scores = collection.vectors(missing).astype(np.float64) @ query.astype(np.float64)
        for doc_id, document, score in zip(missing, collection.get(missing), scores,
                                           strict=True):
            assert document is not None  # the collection just found it
            hit = Hit(id=doc_id, uri=document["uri"], score=min(float(score), 1.0),
                      tags=document["tags"])
            if document.get("words") is not None:
                hit["words"] = document["words"]
            hits.append(hit)
    return LexicalCandidates(ranking, hits, done)
