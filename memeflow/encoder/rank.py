"""/rank in the encoder: embed the image and the candidate texts; the indexer orders them
(`memeflow.indexer.rank`)."""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from memeflow.documents import MemeDoc, is_id_only
from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.pipeline import embed_documents
from memeflow.encoder.text_model import EncoderModel

NO_CANDIDATES = ('no candidate texts: send them as the document\'s matches, e.g. '
                 '"matches": [{"text": "a cat"}, {"text": "a dog"}]')


def embed_for_rank(
    model: EncoderModel, docs: Sequence[MemeDoc], pool: ThreadPoolExecutor, batch_size: int,
    policy: AccessPolicy | None = None,
) -> None:
    """Embed each document's image (id-only ones are left to the indexer) and candidates."""
    for doc in docs:
        if not doc.error and (not doc.matches or any(not m.text for m in doc.matches)):
            doc.error = NO_CANDIDATES
    ready = [doc for doc in docs if not doc.error]
    embed_documents(model, [doc for doc in ready if not is_id_only(doc)], pool, batch_size,
                    policy)
    candidates = [match for doc in ready if not doc.error for match in doc.matches]
    for start in range(0, len(candidates), batch_size):
        batch = candidates[start : start + batch_size]
        # Every candidate has a text: the others were refused above (NO_CANDIDATES).
        texts: list[str] = [m.text for m in batch]  # type: ignore[misc]
        for match, vector in zip(batch, model.embed_texts(texts), strict=True):
            match.embedding = vector
