"""The dense ranking: the candidates nearest the query vectors by cosine similarity.

The collection ranks (exactly, or through its approximate index and then exact rescoring
of the candidates it proposes); the scores are exact cosines, ties broken by id.
"""

import numpy as np

from memeflow.documents import Hit
from memeflow.indexer.backends.base import Collection, Selection


def rank(collection: Collection, queries: np.ndarray, pool: int, selection: Selection
         ) -> list[list[Hit]]:
    """The best `pool` candidates per unit query row ((q, dim)), best first."""
    if selection.empty or len(collection) == 0:
        return [[] for _ in queries]
    return collection.dense_search(queries, pool, selection)
