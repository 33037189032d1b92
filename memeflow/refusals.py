"""A refused request is the caller's mistake: one log line, HTTP 400, and the message.

Executors raise `RequestError` (memeflow.params) for a request they refuse as a whole.
Jina's worker would log it with a traceback and send it back as an error status in the
response header (`status.exception.name` / `.args`), which Jina's HTTP gateway answers
with 500. Here:

- `RefusingExecutor`, the base of memeflow's executors, sends every `RequestError`
  (subclasses too) under that one name, and its log filter cuts the worker's record of it
  to one line without a traceback. Any other exception keeps Jina's traceback and 500.
- `refused(status)` is how the gateway tells a refusal from a fault; `Refused` carries one
  from the gateway's stream to its HTTP answer (`memeflow.gateway.gateway`).
- Over gRPC, Jina's error status goes back as it is: exception name `RequestError`, the
  message its only argument.
"""

import logging
from typing import Any

from jina import Executor

from memeflow.params import REFUSAL_NAME, RequestError


class _OneLine(logging.Filter):
    """Jina's worker logs an executor's exception at ERROR with its traceback; a refusal
    becomes one WARNING line naming the endpoint and the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, RequestError):
            endpoint = getattr(error, "endpoint", None) or "a request"
            record.msg, record.args = f"refused {endpoint}: {error}", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class RefusingExecutor(Executor):
    """An executor whose `RequestError`s are the caller's: see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The worker's request handler logs through the logger named after the runtime.
        name = getattr(self.runtime_args, "name", None)
        if name and not any(isinstance(f, _OneLine) for f in logging.getLogger(name).filters):
            logging.getLogger(name).addFilter(_OneLine())

    async def __acall__(self, req_endpoint: str, **kwargs: Any) -> Any:
        try:
            return await super().__acall__(req_endpoint, **kwargs)
        except RequestError as error:
            refusal = RequestError(*error.args)  # one name on the wire, whatever the subclass
            refusal.endpoint = req_endpoint  # type: ignore[attr-defined]
            raise refusal from None


class Refused(Exception):
    """A refusal found in the gateway's stream of answers, on its way to an HTTP 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def refused(status: Any) -> str | None:
    """The message of a refusal in a Jina status (`response.header.status`), else None."""
    exception = getattr(status, "exception", None)
    if exception is None or exception.name != REFUSAL_NAME:
        return None
    return exception.args[0] if exception.args else status.description


def refusal_body(message: str) -> dict[str, Any]:
    """The JSON of an HTTP 400: FastAPI's `detail`, and the error header Jina's HTTP
    gateway attaches to its own errors, so a Jina client reads the exception's name."""
    exception = {"name": REFUSAL_NAME, "args": [message], "stacks": [], "executor": ""}
    return {"detail": message,
            "header": {"status": {"code": 1, "description": message, "exception": exception}}}
