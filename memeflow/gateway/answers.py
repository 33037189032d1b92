"""HTTP answers people can read without knowing Jina's request format.

- GET /count -> `{"count": N}` and GET /status -> the status as one flat object, with no
  `{"data": []}` body to send and no answer buried in a document's tags (the POST routes
  of the same paths stay as Jina makes them, for Jina's clients).
- A request of one document that fails (an image that cannot be read, an unknown id, a
  vector of the wrong length) is answered 400 with the document's error as `detail`
  and the document itself in `data`, like any request the service refuses. A request of
  several documents is answered 200 with each document's `error` on it, so one bad meme
  does not lose the others' answers.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from memeflow.documents import MemeDoc
from memeflow.gateway.files import IndexedFiles
from memeflow.refusals import refusal_body

Ask = Callable[[str, list[MemeDoc]], Awaitable[list[MemeDoc]]]


class DocumentFailed(Exception):
    """The one document of a request came back with an error; `data` is the answer's
    documents as JSON."""

    def __init__(self, message: str, data: list[Any]) -> None:
        super().__init__(message)
        self.message, self.data = message, data


def failed_document(answer: Any) -> DocumentFailed | None:
    """`DocumentFailed` when Jina's answer (a DataRequest) holds one document with an error."""
    docs = answer.docs
    if len(docs) != 1:
        return None
    error = getattr(docs[0], "error", None)
    if not isinstance(error, str) or not error:
        return None
    return DocumentFailed(error, [json.loads(docs[0].json())])


async def document_failed(request: Request, failed: Exception) -> JSONResponse:
    """The 400 of a failed one-document request: the refusal's fields and the document."""
    assert isinstance(failed, DocumentFailed)
    return JSONResponse({**refusal_body(failed.message), "data": failed.data}, status_code=400)


def plain(ask: Ask, endpoint: str, files: IndexedFiles
          ) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The GET handler of /count or /status: the Flow's answer to `endpoint`, flat.

    /status adds `serves_files`: whether the gateway serves full-size files (only with
    MEMEFLOW_ROOTS set; see `memeflow.gateway.files`)."""

    async def answer() -> dict[str, Any]:
        docs = await ask(endpoint, [])
        tags = dict(docs[0].tags) if docs else {}
        if endpoint == "/count":
            return {"count": tags.get("count", 0)}
        return {**tags, "serves_files": files.serves_files}

    return answer
