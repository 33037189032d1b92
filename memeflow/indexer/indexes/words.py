"""Finding memes by the words written on them: BM25 over character trigrams, in SQLite.

OCR of meme captions often loses the spaces between words ("AIN'TNOBODYGOTTIME") and
misreads a letter here and there, so the index does not split words at all: query and
meme text are both reduced to their letters and digits, lower case (`normalise`), and
compared as overlapping three-letter grams. A meme must share at least `min_coverage` of
the query's distinct grams to count as a match at all, so a few common grams ("the") do not
make a hit; the query appearing whole in the letters (a quoted caption) ranks before any
other match; then BM25 over the grams (k1 1.2, b 0.75, idf ln(1 + (N - n + 0.5) / (n + 0.5))).

The tables live in the store's database and these functions run inside the store's
transactions: they never begin or commit one. `words` (FTS5, `trigram` tokenizer) finds
the rows that hold a gram; `words_grams` counts the rows holding each gram (and keeps the
most times one row held it) and `words_size` the rows and grams in all, which BM25 needs
and FTS5 would count afresh for every query. A text of one or two letters has no trigram:
it is stored padded with `_` (never a letter after `normalise`) to one gram, so such a
query finds the memes whose whole text it is, and nothing else.
"""

import heapq
import math
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from operator import mul, truediv
from typing import NamedTuple

GRAM = 3
PAD = "_"
K1, B = 1.2, 0.75  # the usual BM25 constants
DEFAULT_MIN_COVERAGE = 0.5

SCHEMA: tuple[str, ...] = (  # IF NOT EXISTS: running them twice does no harm
    # case_sensitive 1: `normalise` folded the text already. detail=none: no positions, the
    # grams are looked up one by one (a phrase is checked on the letters).
    "CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(letters, "
    "tokenize='trigram case_sensitive 1', detail=none)",
    # most: the largest count of the gram in one row so far (deletes leave it: a bound).
    "CREATE TABLE IF NOT EXISTS words_grams (gram TEXT PRIMARY KEY, rows INTEGER NOT NULL, "
    "most INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS words_size (id INTEGER PRIMARY KEY CHECK (id = 0), "
    "rows INTEGER NOT NULL, grams INTEGER NOT NULL)",
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


def _count(text: str, gram: str) -> int:
    """Occurrences of `gram` in `text`, overlapping ones too ("aaaa" holds "aaa" twice,
    "ababa" "aba"), where str.count skips them: for grams that end as they begin."""
    found, at = 0, text.find(gram)
    while at >= 0:
        found, at = found + 1, text.find(gram, at + 1)
    return found


def _tally(conn: sqlite3.Connection, texts: Iterable[str], sign: int) -> None:
    """Adds (sign 1) or takes away (-1) the stored `texts` in the gram and row counts."""
    rows, total, holders, most = 0, 0, Counter[str](), Counter[str]()  # most: > 1 only
    for text in texts:
        rows, total = rows + 1, total + len(text) - GRAM + 1
        counts = Counter(text[i : i + GRAM] for i in range(len(text) - GRAM + 1))
        holders.update(counts.keys())
        if sign > 0 and len(counts) < len(text) - GRAM + 1:  # some gram more than once
            for gram, count in counts.items():
                most[gram] = max(most[gram], count)
    if not rows:
        return
    conn.executemany(
        "INSERT INTO words_grams VALUES (?, ?, ?) ON CONFLICT (gram) DO UPDATE "
        "SET rows = rows + excluded.rows, most = max(most, excluded.most)",
        [(gram, sign * n, most[gram] or 1) for gram, n in holders.items()],
    )
    if sign < 0:
        conn.executemany("DELETE FROM words_grams WHERE gram = ? AND rows <= 0",
                         [(gram,) for gram in holders])
    conn.execute(
        "INSERT INTO words_size VALUES (0, ?, ?) "
        "ON CONFLICT (id) DO UPDATE "
        "SET rows = rows + excluded.rows, grams = grams + excluded.grams",
        (sign * rows, sign * total),
    )


def put_words(conn: sqlite3.Connection, rows: Sequence[int], words: Sequence[str | None]) -> None:
    """Replaces what is indexed for each row (`rows[i]` gets `words[i]`); None, blank or no
    letters removes it. A row given twice keeps its last words. Raises ValueError when the
    lengths differ."""
    if len(rows) != len(words):
        raise ValueError(f"{len(rows)} rows but {len(words)} texts")
    delete_words(conn, rows)
    latest = {row: _stored(normalise(text or "")) for row, text in zip(rows, words, strict=True)}
    kept = [(row, letters) for row, letters in latest.items() if letters]
    conn.executemany("INSERT INTO words(rowid, letters) VALUES (?, ?)", kept)
    _tally(conn, (letters for _, letters in kept), 1)


def delete_words(conn: sqlite3.Connection, rows: Sequence[int]) -> None:
    """Removes the rows' words; a row without words is no error."""
    gone = []
    for row in set(rows):
        found = conn.execute("SELECT letters FROM words WHERE rowid = ?", (row,)).fetchone()
        if found is not None:
            gone.append(found[0])
            conn.execute("DELETE FROM words WHERE rowid = ?", (row,))
    _tally(conn, gone, -1)


def move_words(conn: sqlite3.Connection, old: int, new: int) -> None:
    """Renumbers row `old` as `new` (which holds nothing); no error when `old` has no words."""
    conn.execute("UPDATE words SET rowid = ? WHERE rowid = ?", (new, old))


def clear_words(conn: sqlite3.Connection) -> None:
    """Removes every row's words and the counts kept for them."""
    for table in ("words", "words_grams", "words_size"):
        conn.execute(f"DELETE FROM {table}")


def count_words(conn: sqlite3.Connection) -> int:
    """Rows that have words."""
    found = conn.execute("SELECT rows FROM words_size").fetchone()
    return int(found[0]) if found else 0


def _quoted(gram: str) -> str:
    """A gram as an FTS5 string: "and", "not" and digits are letters here, not syntax."""
    return '"' + gram.replace('"', '""') + '"'


def _bm25(weights: list[float], counts: list[int], norm: float) -> float:
    """BM25 of a row: its counts of the query's grams, their weights (idf * (k1 + 1)), and
    its length norm; in map()s: this is most of a search's time."""
    return sum(map(truediv, map(mul, weights, counts), map(norm.__add__, counts)))


def search_words(
    conn: sqlite3.Connection, query: str, top_k: int, min_coverage: float = DEFAULT_MIN_COVERAGE,
    keep: Callable[[int], bool] | None = None,
) -> tuple[list[LexicalHit], bool]:
    """The best `top_k` rows whose words match `query`, among those `keep` accepts (all when
    None: a filter): phrase matches first, then by BM25 score, ties by row; and True when
    no such match lies beyond them (False: ask for more).

    The rows are looked at gram by gram, rarest first (the rarest weigh most), each time
    those holding this gram but none before. A row sharing `needed` of the query's q grams
    holds one of any q - needed + 1, so the search stops after that many; and earlier once
    top_k + 1 matches score above what a row holding only the grams left could reach
    (each as often as a row ever held it; a phrase match holds every gram: none is left
    after the first). Scores are computed
    here, not by FTS5's bm25(), which counts the rows of every gram afresh each query.
    Raises sqlite3.Error when the tables are missing.
    """
    letters = normalise(query)
    wanted = list(grams(letters)) if len(letters) >= GRAM else [_stored(letters)] * bool(letters)
    size = conn.execute("SELECT rows, grams FROM words_size").fetchone()
    if not wanted or top_k <= 0 or not size or not size[0]:
        return [], not (wanted and size and size[0])
    n, average = size[0], size[1] / size[0]
    marks = ",".join("?" * len(wanted))
    holding, most = {}, {}
    for gram, rows, count in conn.execute(
            f"SELECT gram, rows, most FROM words_grams WHERE gram IN ({marks})", wanted):
        holding[gram], most[gram] = rows, count
    needed = min_coverage * len(wanted)
    ordered = sorted(wanted, key=lambda gram: holding.get(gram, 0))  # absent grams first
    present = [gram for gram in ordered if gram in holding]
    weight = {gram: (K1 + 1) * math.log(1 + (n - holding[gram] + 0.5) / (holding[gram] + 0.5))
              for gram in present}  # idf * (k1 + 1): what one gram adds at most
    overlapping = {gram for gram in present if gram[0] == gram[-1]}
    fixed, per_gram = K1 * (1 - B), K1 * B / average  # BM25's length norm, a + b * grams
    least = max(0, math.ceil(needed - 1e-9))  # grams a match holds
    looked = len(wanted) - least + 1  # grams whose rows to read
    best: list[tuple[bool, float, int]] = []  # min-heap of the top_k + 1 so far, worst first
    own_count = grams(letters)  # each gram's count in the phrase, for phrase matches
    own = [own_count[gram] for gram in present]
    alone: dict[int, float] = {}  # a phrase match's score by its length, the phrase alone
    # A match holds `least` grams: it is as long at least. It holds each gram `most` times
    # at most; BM25 grows with the count and shrinks with the length.
    shortest = fixed + per_gram * max(1, least)

    def reach(grams_: list[str]) -> float:
        """The most a match holding only these grams can score."""
        return sum(weight[g] * most[g] / (most[g] + shortest) for g in grams_)

    for i, gram in enumerate(present[: max(0, looked - (len(ordered) - len(present)))]):
        rest = present[i:]
        rest_weights = [weight[g] for g in rest]
        if len(best) > top_k and best[0][:2] > (False, reach(rest)):
            break  # a row holding none of the grams before cannot come near
        # A match holds least - 1 of the others, so one of any len(others) - least + 2 of
        # them: FTS5 checks that for the rarest, which leaves fewer rows to fetch and score,
        # unless they are common (FTS5 walks their rows: more time than it saves).
        others = rest[1 : len(rest) - least + 2]
        expression = _quoted(gram)
        if 1 < least <= len(rest) and sum(map(holding.__getitem__, others)) <= 20 * holding[gram]:
            expression += " AND (" + " OR ".join(map(_quoted, others)) + ")"
        if i:
            expression += " NOT (" + " OR ".join(map(_quoted, present[:i])) + ")"
        for row, text in conn.execute(
                "SELECT rowid, letters FROM words WHERE words MATCH ?", (expression,)):
            if keep is not None and not keep(row):
                continue
            phrase = letters in text  # then it holds every gram
            if not phrase and len(best) > top_k and best[0][0]:
                continue
            norm = fixed + per_gram * (len(text) - GRAM + 1)
            if phrase and len(letters) >= GRAM:
                # The phrase's own score at this length, plus what the query's grams
                # outside the phrase add: fewer grams to count than the whole query.
                if len(text) not in alone:
                    alone[len(text)] = _bm25(rest_weights, own, norm)
                score = alone[len(text)]
                at = text.find(letters)
                outside = text[: at + GRAM - 1] + PAD + text[at + len(letters) - GRAM + 1 :]
                for g in filter(outside.__contains__, rest):
                    before = own_count[g]
                    count = before + (_count(outside, g) if g in overlapping else outside.count(g))
                    score += weight[g] * (count / (count + norm) - before / (before + norm))
            else:
                held = rest if phrase else list(filter(text.__contains__, rest))
                if len(held) < needed:
                    continue
                counts = list(map(text.count, held))
                if overlapping:
                    for j, g in enumerate(held):
                        if g in overlapping:
                            counts[j] = _count(text, g)
                weights = rest_weights if phrase else list(map(weight.__getitem__, held))
                score = _bm25(weights, counts, norm)
            key = (phrase, score, -row)
            if len(best) <= top_k:
                heapq.heappush(best, key)
            elif key > best[0]:
                heapq.heapreplace(best, key)
    ranked = sorted(best, reverse=True)
    return [LexicalHit(-row, score, phrase) for phrase, score, row in ranked[:top_k]], (
        len(ranked) <= top_k)
