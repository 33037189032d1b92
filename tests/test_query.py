"""Combined queries and zero-shot ranking, without a Flow."""

import numpy as np
import pytest

from memeflow.indexer.rank import zero_shot
from memeflow.query import Term, combine, is_plain_text, parse_query
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


def test_empty_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="empty term"):
        parse_query("cat + 2:", no_files)


def test_combine_is_the_renormalised_weighted_sum_of_unit_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 8))
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = units[0] + 2 * units[1] - units[2]
    np.testing.assert_allclose(combine(vectors, [1, 2, -1]), expected / np.linalg.norm(expected),
                               rtol=1e-6)
    np.testing.assert_allclose(combine(vectors[:1], [3.0]), units[0], rtol=1e-6)  # one term
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
    np.testing.assert_allclose(cosines, texts @ image, atol=1e-6)  # cosines near 0: no rtol
    assert probabilities.sum() == pytest.approx(1.0)
    assert list(np.argsort(-probabilities)) == list(np.argsort(-cosines))
    logits = 100 * cosines
    assert probabilities[0] / probabilities[1] == pytest.approx(np.exp(logits[0] - logits[1]))
