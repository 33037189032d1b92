"""Finding memes by the words written on them: SQLite FTS5 over character trigrams.

OCR of meme captions often loses the spaces between words ("AIN'TNOBODYGOTTIME") and
misreads a letter here and there, so the index does not split words at all: query and
meme text are both reduced to their letters and digits, lower case (`normalise`), and
compared as overlapping three-letter grams (FTS5's `trigram` tokenizer). A meme must share
at least `min_coverage` of the query's distinct grams to count as a match at all, so a few
common grams ("the") do not make a hit; the query appearing whole in the letters (a quoted
caption) ranks before any other match; then BM25 over the grams, as FTS5's `bm25()` computes
it (idf = ln((N - n + 0.5) / (n + 0.5)), at least 1e-6; k1 1.2, b 0.75).

The table lives in the store's database; these functions run inside the store's
transactions and never begin or commit one. A text of one or two letters has no trigram:
it is stored padded with `_` (never a letter after `normalise`) to one gram, so such a
query finds the memes whose whole text it is, and nothing else.
"""

import heapq
import math
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import NamedTuple

GRAM = 3
PAD = "_"
DEFAULT_MIN_COVERAGE = 0.5

SCHEMA: tuple[str, ...] = (
    # case_sensitive 1: the text is folded by `normalise` already, the grams must stay its own.
    "CREATE VIRTUAL TABLE words USING fts5(letters, tokenize='trigram case_sensitive 1')",
    # How many rows hold each gram: the search looks among the rows of the rarest.
    "CREATE VIRTUAL TABLE words_vocab USING fts5vocab(words, row)",
)


class LexicalHit(NamedTuple):
    """A meme found by the words on it: the store's row, its BM25 score over the query's
    grams (> 0, higher is better), and whether the normalised query occurs whole in it."""

    row: int
    score: float
    phrase: bool


def normalise(text: str) -> str:
    """Letters and digits only, lower case, accents removed: what survives OCR reliably."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in folded if ch.isalnum())


def grams(text: str) -> Counter[str]:
    """Overlapping character trigrams of the normalised text (the whole text if shorter)."""
    letters = normalise(text)
    if len(letters) < GRAM:
        return Counter([letters] if letters else [])
    return Counter(letters[i : i + GRAM] for i in range(len(letters) - GRAM + 1))


def _stored(letters: str) -> str:
    """What the table holds for normalised `letters`: short texts padded to one gram."""
    return letters.rjust(GRAM, PAD) if letters else ""


def put_words(conn: sqlite3.Connection, rows: Sequence[int], words: Sequence[str | None]) -> None:
    """Replaces what is indexed for each row (`rows[i]` gets `words[i]`); None, blank or no
    letters removes it. Raises ValueError when the lengths differ."""
    if len(rows) != len(words):
        raise ValueError(f"{len(rows)} rows but {len(words)} texts")
    delete_words(conn, rows)
    kept = [(row, _stored(normalise(text or ""))) for row, text in zip(rows, words, strict=True)]
    conn.executemany("INSERT INTO words(rowid, letters) VALUES (?, ?)",
                     [(row, letters) for row, letters in kept if letters])


def delete_words(conn: sqlite3.Connection, rows: Sequence[int]) -> None:
    """Removes the rows' words; a row without words is no error."""
    conn.executemany("DELETE FROM words WHERE rowid = ?", [(row,) for row in rows])


def move_words(conn: sqlite3.Connection, old: int, new: int) -> None:
    """Renumbers row `old` as `new` (which holds nothing); no error when `old` has no words."""
    conn.execute("UPDATE words SET rowid = ? WHERE rowid = ?", (new, old))


def clear_words(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM words")


def count_words(conn: sqlite3.Connection) -> int:
    """Rows that have words."""
    return int(conn.execute("SELECT count(*) FROM words").fetchone()[0])


def _quoted(gram: str) -> str:
    return '"' + gram.replace('"', '""') + '"'


def _any(grams_: Sequence[str]) -> str:
    return "(" + " OR ".join(map(_quoted, grams_)) + ")"


def _ranked(conn: sqlite3.Connection, expression: str) -> Iterator[tuple[float, int, str]]:
    """(-score, row, letters) of the rows matching an FTS5 expression, best first."""
    yield from conn.execute(
        "SELECT bm25(words), rowid, letters FROM words WHERE words MATCH ? ORDER BY rank, rowid",
        (expression,),
    )


def search_words(
    conn: sqlite3.Connection, query: str, top_k: int, min_coverage: float = DEFAULT_MIN_COVERAGE
) -> tuple[list[LexicalHit], bool]:
    """The best `top_k` rows whose words match `query`: phrase matches first, then by score,
    ties by row; and True when no match lies beyond them.

    The score of a row sums FTS5's BM25 over the query's distinct grams (each gram is one
    FTS5 phrase, so `bm25()` is that sum). Two passes: the rows holding every gram, which
    hold every phrase match and are often all a quoted caption needs; else the rows that
    can reach the coverage, those holding one of the q - needed + 1 rarest grams, ranked by
    FTS5 and checked for coverage as they come.
    """
    letters = normalise(query)
    wanted = list(grams(letters)) if len(letters) >= GRAM else [_stored(letters)] * bool(letters)
    if not wanted or top_k <= 0:
        return [], not wanted
    needed = max(1, math.ceil(min_coverage * len(wanted) - 1e-9))
    phrases: list[LexicalHit] = []
    for rank, row, text in _ranked(conn, " AND ".join(map(_quoted, wanted))):
        if letters in text:
            if len(phrases) == top_k:
                return phrases, False
            phrases.append(LexicalHit(row, -rank, True))
    rest = _other_hits(conn, wanted, needed, letters, top_k - len(phrases) + 1)
    others = [LexicalHit(row, -rank, False) for rank, row in rest]
    return (phrases + others)[:top_k], len(phrases) + len(others) <= top_k


def _other_hits(
    conn: sqlite3.Connection, wanted: list[str], needed: int, phrase: str, limit: int
) -> list[tuple[float, int]]:
    """(-score, row) of the best `limit` rows that reach the coverage but do not hold the
    phrase. The candidates hold one of the rarest grams (any `len(wanted) - needed + 1` of
    them would do: a row that shares `needed` grams holds one of those); each gram stays
    one FTS5 phrase, so `bm25()` scores a row by all the grams it holds."""
    marks = ",".join("?" * len(wanted))
    frequencies = dict(conn.execute(
        f"SELECT term, doc FROM words_vocab WHERE term IN ({marks})", wanted).fetchall())
    wanted = sorted(wanted, key=lambda gram: frequencies.get(gram, 0))
    cut = len(wanted) - needed + 1
    rare, common = _any(wanted[:cut]), wanted[cut:]
    if common:
        streams = [_ranked(conn, f"{rare} AND {_any(common)}"),
                   _ranked(conn, f"{rare} NOT {_any(common)}")]
    else:
        streams = [_ranked(conn, rare)]
    found: list[tuple[float, int]] = []
    for rank, row, text in heapq.merge(*streams):
        if phrase not in text and sum(gram in text for gram in wanted) >= needed:
            found.append((rank, row))
            if len(found) == limit:
                break
    return found
