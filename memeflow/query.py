"""Combined queries: several weighted text and image terms as one query vector.

Semantics: every term is embedded on its own into a unit vector u_i; the query is the
weighted sum sum_i(w_i * u_i), renormalised to unit length. A negative weight subtracts
(the results move away from that term). Weights are relative: "2:hat" counts twice as
much as "cat". Terms that cancel out exactly (e.g. "cat - cat") are refused.

The command line writes them as rclip does: `"cat + 2:hat - dog"` (terms separated by
` + ` or ` - ` with spaces around, so "t-shirt" stays one term; `N:` in front sets a
weight); a term that names an existing image file (an image suffix, memeflow.formats),
or an http(s) or data: URL, is an image. Anything else is text, however long: it is never
handed to the file system as a path it cannot be (the encoder cuts texts at 77 tokens).
Over the API a document carries them in `terms`: [{text|uri|blob|id, weight}]. In the Flow
the encoder embeds them (`memeflow.encoder.query_parts`) and `resolve_query_parts` below
combines them: in the encoder, or in the indexer when a part names an indexed id.
"""

import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memeflow.formats import IMAGE_SUFFIXES
from memeflow.uris import describe_source, names_image
from memeflow.vectors import unit_rows

if TYPE_CHECKING:  # DocArray costs the client a second to import: only the Flow needs it
    from memeflow.documents import MemeDoc

_SEPARATOR = re.compile(r"(?:^|\s+)([+-])\s+")
_WEIGHT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+):(.*)$")


@dataclass(frozen=True)
class Term:
    """A parsed term: `image` is a path or URL, otherwise `text`."""

    weight: float
    text: str | None = None
    image: str | None = None


@functools.cache
def _path_limits() -> tuple[int, int]:
    """(longest path, longest file name) in bytes, as the file system says (POSIX)."""
    try:
        return os.pathconf("/", "PC_PATH_MAX"), os.pathconf("/", "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows) or no answer
        return 4096, 255


def is_existing_file(text: str) -> bool:
    """Whether `text` (`~` expanded) names an existing file. Never raises: a text too long
    to be a path, with a NUL or an unknown `~user`, is no file."""
    longest_path, longest_name = _path_limits()
    try:
        path = Path(text).expanduser()
        if len(os.fsencode(path)) >= longest_path or any(
                len(os.fsencode(part)) > longest_name for part in path.parts):
            return False
        return path.is_file()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: expanduser of ~nobody
        return False


def is_image_file(text: str) -> bool:
    """Whether a query part names an existing image file (an image suffix, and a file)."""
    return Path(text).suffix.lower() in IMAGE_SUFFIXES and is_existing_file(text)


def parse_query(query: str, is_file: Callable[[str], bool] | None = None) -> list[Term]:
    """Terms of an rclip-style query; ValueError for an empty one or an empty term.
    `is_file(part)`: whether a part is an image file (default `is_image_file`)."""
    is_file = is_file or is_image_file
    parts = _SEPARATOR.split(query.strip())
    signs = ["+", *parts[1::2]]
    bodies = parts[0::2]
    if bodies and not bodies[0].strip() and len(bodies) > 1:  # a leading "+ x" or "- x"
        signs, bodies = signs[1:], bodies[1:]
    terms = []
    for sign, body in zip(signs, bodies, strict=True):
        body = body.strip()
        weight = 1.0
        if (weighted := _WEIGHT.match(body)) and not is_file(body):
            weight, body = float(weighted[1]), weighted[2].strip()
        if not body:
            raise ValueError(f"query {query!r} has an empty term: write e.g. 'cat + 2:hat - dog'")
        weight = -weight if sign == "-" else weight
        if names_image(body) or is_file(body):
            terms.append(Term(weight, image=body))
        else:
            terms.append(Term(weight, text=body))
    return terms


def is_plain_text(terms: Sequence[Term]) -> bool:
    """One text at weight 1: an ordinary text search."""
    return len(terms) == 1 and terms[0].text is not None and terms[0].weight == 1.0


def combine(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The unit-length weighted sum of unit term vectors (see the module docstring)."""
    total = np.asarray(weights, np.float64) @ unit_rows(vectors, np.float64)
    norm = np.linalg.norm(total)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("the query's terms cancel out (their weighted sum is zero): "
                         "change a weight or drop a negative term")
    return (total / norm).astype(np.float32)


def part_label(position: int, term: Any) -> str:
    """How messages name a query part: its text, where its image is, or its id."""
    what = term.text if term.text else describe_source(term.uri, term.blob) if (
        term.uri or term.blob is not None) else f"id {term.id}"
    return f"term {position} ({what})"


def resolve_query_parts(
    doc: "MemeDoc", vectors_of: Callable[[list[str]], Sequence[np.ndarray | None]]
) -> None:
    """Fill id terms with stored vectors (`vectors_of(ids)`, None for an unknown id), then
    set the document's embedding to the combined query; the terms are not sent back."""
    from docarray import DocList

    from memeflow.documents import TermDoc, is_id_only

    ids: list[str] = [term.id for term in doc.terms if term.id and is_id_only(term)]
    stored = dict(zip(ids, vectors_of(ids), strict=True))
    for position, term in enumerate(doc.terms, start=1):
        if is_id_only(term):
            assert term.id is not None  # is_id_only: it has one
            if stored.get(term.id) is None:
                doc.error = (f"{part_label(position, term)}: no meme with this id is indexed; "
                             "index it first or use its file as the term")
                return
            term.embedding = stored[term.id]  # type: ignore[assignment]  # pydantic: an NdArray
    try:
        # pydantic validates the assignment: the ndarray becomes an NdArray.
        doc.embedding = combine(np.stack([np.asarray(t.embedding) for t in doc.terms]),  # type: ignore[assignment]
                                [t.weight for t in doc.terms])
    except ValueError as exc:
        doc.error = str(exc)
    doc.terms = DocList[TermDoc]()
