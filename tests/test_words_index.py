"""The words on memes in SQLite FTS5 (memeflow.indexer.indexes.words), on an in-memory database."""

import math
import random
import sqlite3
from collections.abc import Iterator

import pytest

from memeflow.indexer.indexes.words import (
    K1,
    SCHEMA,
    B,
    clear_words,
    count_words,
    delete_words,
    grams,
    move_words,
    normalise,
    put_words,
    search_words,
)

CAPTIONS = {
    1: "MEMES?\nAIN'TNOBODYGOT TIME FO'THAT",  # as OCR reads it: spaces lost
    2: "IHAVEREADANDAGREETOTHE\nTERMSANDCONDITIONS",
    3: "IDON'TKNOWWHAT\nTHISMEMEISFOR\nANDATTHISPOINTIM\nTOOAFRAIDTOASK",
    4: "IT'SATRAP!",
}
SWEET_BROWN, AGNES, ANDY, ACKBAR = CAPTIONS


def empty() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    for statement in SCHEMA:
        conn.execute(statement)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    conn = empty()
    put_words(conn, list(CAPTIONS), list(CAPTIONS.values()))
    yield conn
    conn.close()


def rows(conn: sqlite3.Connection, query: str, top_k: int = 10) -> list[int]:
    return [hit.row for hit in search_words(conn, query, top_k)[0]]


def test_normalise_keeps_letters_and_digits_only() -> None:
    assert normalise("Ain't nobody — got TIME fo' that!") == "aintnobodygottimefothat"
    assert normalise("Café 2") == "cafe2"


def test_a_quoted_caption_finds_its_meme_despite_lost_spaces(conn) -> None:
    assert rows(conn, "ain't nobody got time for that")[0] == SWEET_BROWN
    (hits, done) = search_words(conn, "at this point I am too afraid to ask", 10)
    assert hits[0].row == ANDY and hits[0].phrase is False and hits[0].score > 0  # not verbatim
    assert done
    (hits, _) = search_words(conn, "at this point I'm too afraid", 10)
    assert hits[0].row == ANDY and hits[0].phrase is True


def test_a_misread_letter_still_finds_the_meme(conn) -> None:
    assert rows(conn, "TERMSANDCONDlTIONS") == [AGNES]  # an l for an i


def test_a_few_shared_letters_are_no_match(conn) -> None:
    assert rows(conn, "the") == [AGNES]  # "the" is written there
    assert search_words(conn, "a photo of a dog on the beach", 10) == ([], True)
    assert search_words(conn, "!?", 10) == ([], True)  # no letters: nothing to look for


def test_a_query_of_one_or_two_letters_finds_memes_saying_just_that(conn) -> None:
    put_words(conn, [5, 6], ["NO.", "No no"])
    assert rows(conn, "no") == [5]
    assert rows(conn, "n") == []


def test_grams_that_are_fts5_keywords_are_plain_letters() -> None:
    conn = empty()
    put_words(conn, [1, 2], ["AND NOT OR NEAR", "NEAR"])
    assert rows(conn, "and not") == [1]
    assert rows(conn, "near") == [2, 1]  # the shorter text first


def test_delete_clear_and_put_replace_words(conn) -> None:
    delete_words(conn, [AGNES, 99])  # a row without words is no error
    assert count_words(conn) == 3
    assert rows(conn, "terms and conditions") == []
    put_words(conn, [ACKBAR], ["TERMS AND CONDITIONS"])
    assert rows(conn, "terms and conditions") == [ACKBAR]
    assert rows(conn, "it's a trap") == []
    put_words(conn, [ACKBAR, ANDY], [None, "  ...  "])  # no words, no letters: removed
    assert count_words(conn) == 1
    clear_words(conn)
    assert count_words(conn) == 0 and search_words(conn, "memes", 10) == ([], True)
    with pytest.raises(ValueError, match="2 rows but 1 texts"):
        put_words(conn, [1, 2], ["x"])


def test_a_moved_row_keeps_its_words_under_its_new_number(conn) -> None:
    move_words(conn, ACKBAR, 7)
    assert rows(conn, "it's a trap") == [7]
    assert count_words(conn) == 4
    move_words(conn, 42, 43)  # no words: nothing to move
    assert count_words(conn) == 4


def test_top_k_and_whether_more_matches_remain(conn) -> None:
    put_words(conn, [10, 11, 12], ["IT'S A TRAP", "ITSATRAPITSATRAP", "ITS A TRAB"])
    everything, done = search_words(conn, "it's a trap", 10)
    assert done and [hit.row for hit in everything][-1] == 12  # not the phrase: last
    assert all(hit.phrase for hit in everything[:-1])
    for top_k in range(1, len(everything) + 1):
        hits, done = search_words(conn, "it's a trap", top_k)
        assert hits == everything[:top_k]
        assert done is (top_k == len(everything))


def test_changes_score_as_the_same_words_put_at_once() -> None:
    """BM25 weighs a gram by how many memes hold it: after puts, deletes and moves the
    scores are those of an index built from the words that remain."""
    rng = random.Random(3)
    words = ["time", "nobody", "trap", "walk", "into", "mordor", "terms", "what", "aaaa"]
    texts = {i: " ".join(rng.choices(words, k=rng.randint(1, 6))) for i in range(60)}
    changed = empty()
    put_words(changed, list(texts), list(texts.values()))
    for step in range(40):
        row = rng.randrange(60)
        if step % 3 == 0:
            delete_words(changed, [row])
            texts.pop(row, None)
        elif step % 3 == 1 and row in texts and 100 + step not in texts:
            move_words(changed, row, 100 + step)
            texts[100 + step] = texts.pop(row)
        else:
            texts[row] = " ".join(rng.choices(words, k=rng.randint(1, 6)))
            put_words(changed, [row, row], ["lost", texts[row]])  # the last one counts
    fresh = empty()
    put_words(fresh, list(texts), list(texts.values()))
    assert count_words(changed) == count_words(fresh) == len(texts)
    for query in ["time", "walk into mordor", "nobody terms", "aaaa", "trap what"]:
        (got, _), (want, _) = search_words(changed, query, 100), search_words(fresh, query, 100)
        assert [(h.row, h.phrase) for h in got] == [(h.row, h.phrase) for h in want], query
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-12)


def bm25(texts: dict[int, str], query: str) -> dict[int, float]:
    """BM25 over the query's distinct grams, computed for every document holding one."""
    counts = {row: grams(text) for row, text in texts.items()}
    lengths = {row: sum(c.values()) for row, c in counts.items()}
    average = sum(lengths.values()) / len(lengths)
    scores: dict[int, float] = {}
    for gram in grams(query):
        holders = [row for row in texts if gram in counts[row]]
        idf = math.log(1 + (len(texts) - len(holders) + 0.5) / (len(holders) + 0.5))
        for row in holders:
            count = counts[row][gram]
            scores[row] = scores.get(row, 0.0) + idf * count * (K1 + 1) / (
                count + K1 * (1 - B + B * lengths[row] / average))
    return scores


def test_the_word_index_finds_what_scoring_every_document_finds() -> None:
    """Looking only among the rows that can reach the coverage changes no result: checked
    against BM25 and the coverage computed for every document, on random OCR-like captions."""
    rng = random.Random(5)
    words = ["the", "time", "ain't", "nobody", "got", "for", "that", "trap", "one", "does",
             "not", "simply", "walk", "into", "mordor", "terms", "and", "conditions", "what",
             "haha", "aaa"]  # grams that overlap themselves: "hahaha" holds "hah" twice
    texts = {i: " ".join(rng.choices(words, k=rng.randint(2, 9))) for i in range(400)}
    conn = empty()
    put_words(conn, list(texts), list(texts.values()))
    for _ in range(60):
        query = " ".join(rng.choices(words, k=rng.randint(1, 6)))
        wanted, phrase = grams(query), normalise(query)
        scores = bm25(texts, query)
        matches = {row for row in scores
                   if sum(g in grams(texts[row]) for g in wanted) >= 0.5 * len(wanted)}
        for top_k in (1, 3, 10, 50, 400):
            hits, done = search_words(conn, query, top_k)
            assert done is (len(matches) <= top_k), query
            assert len(hits) == min(top_k, len(matches)), query
            for hit in hits:
                assert hit.row in matches, query
                assert hit.phrase is (phrase in normalise(texts[hit.row])), query
                assert hit.score == pytest.approx(scores[hit.row], rel=1e-9), query
            keys = [(not hit.phrase, -hit.score, hit.row) for hit in hits]
            assert keys == sorted(keys), query
            # The best of all matches, up to floating point ties at the last place.
            if hits and len(hits) < len(matches):
                last = keys[-1]
                left_out = matches - {hit.row for hit in hits}
                assert all(
                    (phrase not in normalise(texts[row]), -scores[row]) >= last[:2]
                    or math.isclose(scores[row], -last[1], rel_tol=1e-9)
                    for row in left_out
                ), query


def test_memes_repeating_a_gram_are_not_cut_off_early() -> None:
    """The search stops early when no row left unread could score into the top_k: a row
    saying "hahahaha" counts its grams four times, which that bound must allow for."""
    words = ["haha", "hahahahahaha", "lol", "lololololol", "zork", "aaaaaaaaaa", "walk",
             "mordor", "trap", "the", "abab", "ababababab", "xyz", "kek", "kekekekek"]
    for seed in range(6):
        rng = random.Random(seed)
        texts = [" ".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(200)]
        conn = empty()
        put_words(conn, range(len(texts)), texts)
        for _ in range(300):
            query = " ".join(rng.choices(words, k=rng.randint(1, 4)))
            everything, _ = search_words(conn, query, len(texts))  # no stopping early
            for top_k in (1, 2, 3):
                assert search_words(conn, query, top_k)[0] == everything[:top_k], query


def test_the_store_owns_the_transaction(conn) -> None:
    """Nothing here commits: the store's rollback undoes words and counts alike, and its
    schema may run again at every open."""
    conn.commit()
    put_words(conn, [9], ["ONE DOES NOT SIMPLY WALK INTO MORDOR"])
    delete_words(conn, [ACKBAR])
    assert conn.in_transaction and count_words(conn) == 4
    conn.rollback()
    assert count_words(conn) == 4 and rows(conn, "it's a trap") == [ACKBAR]
    assert rows(conn, "walk into mordor") == []
    for statement in SCHEMA:
        conn.execute(statement)
    assert rows(conn, "it's a trap") == [ACKBAR]
