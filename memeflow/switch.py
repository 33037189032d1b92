"""Switching a running Flow to another model and workspace (`memeflow reindex`), in phases
that every stage answers on `/switch`:

- `prepare` (parameters `model`, `workspace`): the encoder loads the new model and the
  indexer opens the new workspace in a background thread, beside what they serve; both
  keep answering every other request meanwhile (a stage handles one request at a time, so
  loading inside the request would hold searches up for the whole load);
- `poll`: each stage reports `loading`, `ready` or `failed: REASON`;
- `commit`: each stage puts what it prepared in place of what it served: an assignment
  that cannot fail. The request passes the encoder first, then the indexer; a stage
  handles requests in the order they reach it, so a query the old model encoded reaches
  the indexer before the commit does;
- `abort`: each stage drops what it prepared (a failed prepare, or a reindex cut short);
  what it serves never changed.

Nothing here imports a model library: the encoder and the indexer each pass their own
loading function.
"""

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from memeflow.params import RequestError

T = TypeVar("T")

PHASES = ("prepare", "poll", "commit", "abort")
LOADING, READY, FAILED = "loading", "ready", "failed"


class SwitchError(RequestError):
    """A /switch request that cannot be followed (an unknown phase, a commit with nothing
    ready); the message says why."""


class PendingSwitch(Generic[T]):
    """What one stage is preparing: loaded in a thread, taken at commit, dropped at abort."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._value: T | None = None
        self._error: str | None = None
        self._generation = 0

    def prepare(self, load: Callable[[], T], discard: Callable[[T], None]) -> None:
        """Starts `load` in a thread, dropping (with `discard`) anything prepared before."""
        self.abort(discard)
        with self._lock:
            self._generation += 1
            generation = self._generation

        def run() -> None:
            try:
                value, error = load(), None
            except Exception as exc:  # reported by poll(), the serving state is untouched
                value, error = None, f"{type(exc).__name__}: {exc}".split("\n")[0]
            with self._lock:
                current = generation == self._generation
                if current:
                    self._value, self._error = value, error
            if not current and value is not None:  # aborted while loading
                discard(value)

        self._thread = threading.Thread(target=run, name="switch-prepare", daemon=True)
        self._thread.start()

    def state(self) -> str:
        """`idle`, `loading`, `ready` or `failed: REASON`."""
        with self._lock:
            if self._error is not None:
                return f"{FAILED}: {self._error}"
            if self._value is not None:
                return READY
        return LOADING if self._thread is not None and self._thread.is_alive() else "idle"

    def take(self) -> T:
        """The prepared value, handed over once; SwitchError when none is ready."""
        with self._lock:
            if self._value is None:
                why = f"{FAILED}: {self._error}" if self._error else "nothing prepared"
                raise SwitchError(f"nothing is ready to switch to ({why}): "
                                  "send phase prepare and wait for poll to say ready")
            value, self._value, self._thread = self._value, None, None
            return value

    def abort(self, discard: Callable[[T], None]) -> None:
        """Drops what is prepared; a load still running is dropped when it ends."""
        with self._lock:
            self._generation += 1
            value, self._value, self._error, self._thread = self._value, None, None, None
        if value is not None:
            discard(value)


def phase_of(parameters: dict[str, Any]) -> str:
    """The request's phase; SwitchError for an unknown one."""
    phase = str(parameters.get("phase") or "")
    if phase not in PHASES:
        raise SwitchError(f"/switch needs phase one of {', '.join(PHASES)}, got {phase!r}")
    return phase


def target_of(parameters: dict[str, Any]) -> tuple[str, str]:
    """`model` and `workspace` of a prepare request; SwitchError when one is missing."""
    model, workspace = parameters.get("model"), parameters.get("workspace")
    if not isinstance(model, str) or not model or not isinstance(workspace, str) or not workspace:
        raise SwitchError("/switch prepare needs `model` and `workspace` (an absolute path)")
    return model, workspace
