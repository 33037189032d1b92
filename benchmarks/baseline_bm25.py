"""The pre-SQLite word index (memeflow.indexer.bm25.Bm25Index), kept as the benchmark baseline."""

import math
from collections import Counter, defaultdict
from typing import NamedTuple

from memeflow.indexer.indexes.words import DEFAULT_MIN_COVERAGE, K1, B, grams, normalise  # the same


class LexicalHit(NamedTuple):
    """A meme the lexical index found by the words on it (not a search `Hit`: no uri, no
    tags; the indexer fuses these ids with the dense ranking)."""

    id: str
    score: float  # BM25, plus a bonus that puts whole-phrase matches first
    phrase: bool  # the normalised query occurs whole in the meme's words


class Bm25Index:
    """The lexical index: BM25 over character trigrams, an inverted index from trigrams to
    documents kept in memory and rebuilt from the store."""

    def __init__(self, min_coverage: float = DEFAULT_MIN_COVERAGE) -> None:
        self.min_coverage = min_coverage
        self._postings: dict[str, dict[str, int]] = {}
        self._lengths: dict[str, int] = {}
        self._texts: dict[str, str] = {}  # normalised, for phrase matches
        self._total = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._lengths

    def upsert(self, doc_id: str, words: str | None) -> None:
        """Replaces what is indexed for `doc_id`; no words (None or blank) removes it."""
        self.delete([doc_id])
        counts = grams(words or "")
        if not counts:
            return
        for gram, count in counts.items():
            self._postings.setdefault(gram, {})[doc_id] = count
        self._lengths[doc_id] = length = sum(counts.values())
        self._texts[doc_id] = normalise(words or "")
        self._total += length

    def delete(self, ids: list[str]) -> None:
        for doc_id in ids:
            length = self._lengths.pop(doc_id, None)
            if length is None:
                continue
            self._total -= length
            for gram in grams(self._texts.pop(doc_id)):
                posting = self._postings[gram]
                del posting[doc_id]
                if not posting:
                    del self._postings[gram]

    def clear(self) -> None:
        self._postings, self._lengths, self._texts, self._total = {}, {}, {}, 0

    def search(self, query: str, top_k: int) -> list[LexicalHit]:
        """The best `top_k` memes whose words match `query`, best first, ties by id.

        Only documents that can reach the coverage are scored: one that shares `needed` of
        the query's q distinct grams holds at least one of any q - needed + 1 of them, so
        the postings of that many rarest grams name every candidate, and the common grams
        ("the", "ing") are looked up per candidate instead of walked in full.
        """
        wanted = grams(query)
        if not wanted or not self._lengths:
            return []
        n, average = len(self._lengths), self._total / len(self._lengths)
        needed = self.min_coverage * len(wanted)
        postings = [self._postings.get(gram, {}) for gram in wanted]  # summed in query order
        rarest = len(wanted) - max(0, math.ceil(needed - 1e-9)) + 1  # more is safe, fewer not
        candidates = set().union(*sorted(postings, key=len)[:rarest])
        scores: defaultdict[str, float] = defaultdict(float)
        shared: Counter[str] = Counter()
        for posting in postings:
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            if len(posting) <= len(candidates):
                found = ((d, c) for d, c in posting.items() if d in candidates)
            else:
                found = ((d, posting[d]) for d in candidates if d in posting)
            for doc_id, count in found:
                norm = K1 * (1 - B + B * self._lengths[doc_id] / average)
                scores[doc_id] += idf * count * (K1 + 1) / (count + norm)
                shared[doc_id] += 1
        phrase = normalise(query)
        hits = [
            LexicalHit(doc_id, score, phrase in self._texts[doc_id])
            for doc_id, score in scores.items()
            if shared[doc_id] >= needed
        ]
        hits.sort(key=lambda hit: (not hit.phrase, -hit.score, hit.id))
        return hits[:top_k]
