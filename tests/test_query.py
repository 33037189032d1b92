"""Combined queries and zero-shot ranking, without a Flow."""

import numpy as np
import pytest

from memeflow.indexer.rank import zero_shot
from memeflow.query import Term, combine, is_existing_file, is_plain_text, parse_query
from memeflow.vectors import unit_rows


def no_files(_: str) -> bool:
    return False


def test_rclip_syntax() -> None:
    assert parse_query("cat + 2:hat - dog", no_files) == [
        Term(1.0, text="cat"), Term(2.0, text="hat"), Term(-1.0, text="dog")]
    assert parse_query("a t-shirt + 0.5:blue-ish sky", no_files) == [
        Term(1.0, text="a t-shirt"), Term(0.5, text="blue-ish sky")]
    assert parse_query("- dog + cat", no_files) == [Term(-1.0, text="dog"), Term(1.0, text="cat")]
    assert parse_query("10:00 am", no_files) == [Term(10.0, text="00 am")]  # weights win
    assert is_plain_text(parse_query("drake rejecting something", no_files))
    assert not is_plain_text(parse_query("2:drake", no_files))


def test_a_term_naming_a_file_or_url_is_an_image(tmp_path) -> None:
    image = tmp_path / "3:odd name.png"
    image.write_bytes(b"x")
    assert parse_query(f"{image} - text") == [Term(1.0, image=str(image)),
                                              Term(-1.0, text="text")]
    assert parse_query("https://x.org/a.jpg + cat", no_files)[0] == Term(
        1.0, image="https://x.org/a.jpg")


def test_a_long_or_odd_text_is_text_and_never_a_path(tmp_path, monkeypatch) -> None:
    """The file system is asked only about parts that could be image paths: a 200-word
    query once failed with "[Errno 36] File name too long"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").write_text("not an image")  # an existing file, no image suffix
    (tmp_path / "cat.png").write_bytes(b"x")
    long_word = "a" * 5000
    for text in ("cat " * 200, long_word, f"{long_word}.png", f"{'x/' * 3000}y.jpg",
                 "a\0b.png", "~no-such-user-here/x.png", "notes"):
        assert parse_query(text) == [Term(1.0, text=text.strip())], text[:40]
        assert is_existing_file(text) is False or text == "notes"
    assert parse_query("cat.png + 2:cat " + "word " * 100) == [
        Term(1.0, image="cat.png"), Term(2.0, text=("cat " + "word " * 100).strip())]


def test_empty_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="empty term"):
        parse_query("cat + 2:", no_files)


def test_combine_is_the_renormalised_weighted_sum_of_unit_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 8))
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = units[0] + 2 * units[1] - units[2]
    # Components of unit vectors can be near zero: an absolute tolerance, not a relative one.
    np.testing.assert_allclose(combine(vectors, [1, 2, -1]), expected / np.linalg.norm(expected),
                               atol=1e-6)
    np.testing.assert_allclose(combine(vectors[:1], [3.0]), units[0], atol=1e-6)  # one term
    with pytest.raises(ValueError, match="cancel out"):
        combine(np.stack([units[0], units[0]]), [1, -1])


def test_unit_rows_scale_each_row_to_length_one_and_leave_zero_rows_zero() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    units = unit_rows(rows)
    assert units.dtype == np.float32 and units.shape == (3, 2)
    np.testing.assert_allclose(units, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], atol=1e-7)
    assert unit_rows(rows, np.float64).dtype == np.float64


def test_zero_shot_is_a_softmax_over_100_cosines(clip_model) -> None:
    from PIL import Image

    image = clip_model.embed_images([Image.new("RGB", (224, 224), (200, 30, 30))])[0]
    texts = clip_model.embed_texts(["a red square", "a dog", "a spreadsheet"])
    probabilities, cosines = zero_shot(image, texts)
    # The cosines are float64 dot products of the float32 vectors; with random weights they
    # lie near zero, where only an absolute tolerance makes sense.
    reference = texts.astype(np.float64) @ image.astype(np.float64)
    np.testing.assert_allclose(cosines, reference, rtol=0, atol=1e-12)
    assert probabilities.sum() == pytest.approx(1.0)
    assert list(np.argsort(-probabilities)) == list(np.argsort(-cosines))
    logits = 100 * cosines
    assert probabilities[0] / probabilities[1] == pytest.approx(np.exp(logits[0] - logits[1]))
