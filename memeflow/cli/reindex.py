"""`memeflow reindex --model ID`: the serving Flow moves to another model without stopping.

1. The stored documents (id, uri, tags, words) are listed from the serving Flow (`/find`).
2. A second Flow, with the new model and a new, empty workspace, starts on free ports; every
   document is encoded again from its file into it (bytes read here, as `memeflow index`
   does), keeping its id, uri, tags and words. What can no longer be read is listed.
3. A second listing catches what was indexed or deleted meanwhile; then the second Flow
   stops (releasing the new workspace).
4. The serving Flow switches (`/switch`, memeflow.switch): its encoder loads the new model
   and its indexer opens the new workspace beside what they serve, then both swap at once.
   Search answers throughout, on the old model until the swap and on the new one after.

A failure before the swap (the new model cannot load, the second Flow cannot start, Ctrl-C)
leaves the serving Flow as it was, and the new workspace folder for the user to remove or
to reuse. The old workspace is kept as it was at the switch; at the swap the indexer
records the move beside it (memeflow.moved_workspace), which `memeflow serve` follows.
"""

import contextlib
import hashlib
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memeflow import config
from memeflow.cli.exposure import free_port_run
from memeflow.moved_workspace import record_path

if TYPE_CHECKING:
    from memeflow.client import MemeClient
    from memeflow.documents import MemeDoc

SWITCH_TIMEOUT = 900.0  # seconds for the serving Flow to load the model and open the index
POLL_SECONDS = 0.25


class ReindexError(RuntimeError):
    """Reindexing stopped before the switch; the serving Flow is unchanged. Says why."""


@dataclass
class ReindexReport:
    """What was moved: the new workspace, the documents encoded, and those that could not be
    (uri or id, reason), which the new workspace does not hold; the old workspace (kept)
    and the move record `memeflow serve` follows (None: the service could not write it,
    `not_recorded` says why)."""

    model: str
    workspace: str
    old_workspace: str = ""
    encoded: int = 0
    deleted_meanwhile: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    move_record: str | None = None
    not_recorded: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "workspace": self.workspace,
                "old_workspace": self.old_workspace, "encoded": self.encoded,
                "deleted_meanwhile": self.deleted_meanwhile,
                "failed": [{"document": d, "reason": r} for d, r in self.failed],
                "move_record": self.move_record, "not_recorded": self.not_recorded}


def default_workspace(current: Path, model: str) -> Path:
    """Beside the serving one, named after the model: `index` -> `index--clip-vit-b-16`."""
    slug = re.sub(r"[^a-z0-9]+", "-", Path(model).name.lower()).strip("-") or "model"
    candidate = current.parent / f"{current.name}--{slug}"
    number = 2
    while candidate.exists() and any(candidate.iterdir()):
        candidate, number = current.parent / f"{current.name}--{slug}-{number}", number + 1
    return candidate


def _fingerprint(doc: "MemeDoc") -> tuple[Any, ...]:
    """What makes a stored document need encoding again in the new workspace."""
    return doc.uri, doc.tags.get("sha256")


def _request_for(client: "MemeClient", doc: "MemeDoc") -> "MemeDoc":
    """The document to encode again: its file's bytes (sha256 tag refreshed), or its URL for
    the encoder to fetch. OSError/ValueError when there is nothing to read."""
    from memeflow.client.moves import stored_path
    from memeflow.documents import MemeDoc
    from memeflow.regular_files import open_regular

    fields: dict[str, Any] = {"id": doc.id, "uri": doc.uri, "tags": dict(doc.tags),
                              "words": doc.words}
    path = stored_path(doc.uri)
    if path is not None:
        with open_regular(path) as file:  # a FIFO or device is refused, never waited on
            data = file.read()
        if "sha256" in fields["tags"]:
            fields["tags"]["sha256"] = hashlib.sha256(data).hexdigest()
        return client.image_doc(data, **fields)
    if doc.uri and re.match(r"(?i)(https?|data):", doc.uri):
        return MemeDoc(**fields)
    raise ValueError("no file or URL to encode it from (it was stored with its own vector)")


def encode_again(source: Sequence["MemeDoc"], target: "MemeClient", batch_size: int,
                 report: ReindexReport, on_progress: Callable[[int], object] | None) -> None:
    """Sends each document to `target`'s /index from its file, at most `batch_size` files
    and `config.DEFAULT_INDEX_BATCH_BYTES` bytes a request (as `memeflow index` sends
    them: a folder of videos makes requests of megabytes); failures go to the report."""
    requests: list[tuple[str, MemeDoc]] = []
    size = done = 0

    def send() -> None:
        nonlocal size, done
        if requests:
            replies = target.index([request for _, request in requests])
            for (name, _), reply in zip(requests, replies, strict=True):
                if reply.error:
                    report.failed.append((name, reply.error))
                else:
                    report.encoded += 1
        if on_progress and done:
            on_progress(done)
        requests.clear()
        size = done = 0

    for doc in source:
        name = doc.uri or str(doc.id)
        try:
            request = _request_for(target, doc)
        except (OSError, ValueError) as exc:
            report.failed.append((name, getattr(exc, "strerror", None) or str(exc)))
        else:
            requests.append((name, request))
            size += len(request.blob or b"")
        done += 1
        if len(requests) >= batch_size or size >= config.DEFAULT_INDEX_BATCH_BYTES:
            send()
    send()


def switch_service(client: "MemeClient", model: str, workspace: Path,
                   on_state: Callable[[dict[str, Any]], object] | None = None
                   ) -> dict[str, Any]:
    """Prepare, wait for ready, commit (memeflow.switch); abort on any failure and raise
    ReindexError, leaving the service on what it served. Returns the commit's states."""
    try:
        states = client.switch("prepare", model=model, workspace=str(workspace))
        deadline = time.monotonic() + SWITCH_TIMEOUT
        while True:
            if on_state:
                on_state(states)
            failed = [f"{stage}: {state}" for stage, state in states.items()
                      if str(state).startswith("failed")]
            if failed:
                raise ReindexError("the service could not switch: " + "; ".join(failed))
            if states and all(state == "ready" for state in states.values()):
                break
            if time.monotonic() > deadline:
                raise ReindexError(f"the service was not ready to switch after "
                                   f"{SWITCH_TIMEOUT:.0f} s")
            time.sleep(POLL_SECONDS)
            states = client.switch("poll")
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            client.switch("abort")
        raise
    return client.switch("commit")


def reindex(client: "MemeClient", model: str, workspace: Path | None = None,
            batch_size: int = config.DEFAULT_INDEX_BATCH,
            on_total: Callable[[int], object] | None = None,
            on_progress: Callable[[int], object] | None = None,
            on_step: Callable[[str], object] | None = None) -> ReindexReport:
    """Moves the service at `client` to `model` (see the module docstring). Raises
    ReindexError (or the service's own errors) with the service unchanged."""
    from memeflow.cli.serve import FlowProcess, ServiceError
    from memeflow.client import MemeClient
    from memeflow.encoder.source import ModelLoadError

    step = on_step or (lambda message: None)
    if config.index():  # the second Flow would write into the serving Flow's collection
        raise ReindexError("MEMEFLOW_INDEX points at an index outside the workspace: reindex "
                           "moves the embedded index of a workspace; unset it here")
    if Path(model).expanduser().exists():  # the service runs elsewhere: an absolute path
        model = str(Path(model).expanduser().absolute())
    status = client.status()
    if (status.get("shards") or 1) > 1:
        raise ReindexError("the service keeps a sharded index: reindex moves a single index; "
                           "serve the shards from a new workspace and index it instead")
    if "workspace" not in status:  # the documents live in Milvus (/status names `index`)
        raise ReindexError(f"the service keeps its documents in {status.get('index')}: reindex "
                           "moves the embedded index of a workspace; index into a new "
                           "collection with the new model instead")
    current = Path(status["workspace"])
    target = (workspace or default_workspace(current, model)).expanduser().absolute()
    if target.exists() and any(target.iterdir()):
        raise ReindexError(f"{target} is not empty: give --workspace an empty or new folder")
    listed = list(client.all_documents())
    if on_total:
        on_total(len(listed))
    report = ReindexReport(model=model, workspace=str(target), old_workspace=str(current))
    # Outside the ephemeral range: the gateway binds them after the model loads, and an
    # outgoing connection could take a port the kernel handed out in between.
    ports = free_port_run(1), free_port_run(1)
    env = {"MEMEFLOW_MODEL": model, "MEMEFLOW_WORKSPACE": str(target),
           "MEMEFLOW_GRPC_PORT": str(ports[0]), "MEMEFLOW_HTTP_PORT": str(ports[1])}
    with tempfile.NamedTemporaryFile("w+", prefix="memeflow-reindex-", suffix=".log",
                                     delete=False) as log:
        step(f"starting {model} on {target} (its log: {log.name})")
        builder = FlowProcess(log=log, env=env)
        try:
            builder.start().wait_ready()
        except (ServiceError, ModelLoadError) as exc:
            raise ReindexError(f"cannot start {model}: {exc}") from exc
        try:
            target_client = MemeClient(f"grpc://127.0.0.1:{ports[0]}")
            step(f"encoding {len(listed)} documents again")
            encode_again(listed, target_client, batch_size, report, on_progress)
            # What changed in the serving index meanwhile.
            before = {doc.id: _fingerprint(doc) for doc in listed}
            now = list(client.all_documents())
            changed = [doc for doc in now if before.get(doc.id) != _fingerprint(doc)]
            gone = sorted(str(i) for i in set(before) - {doc.id for doc in now} if i)
            if changed:
                step(f"encoding {len(changed)} documents indexed meanwhile")
                encode_again(changed, target_client, batch_size, report, None)
            if gone:
                report.deleted_meanwhile = target_client.delete(gone)
        finally:
            builder.stop()
    if listed and not report.encoded:
        first = report.failed[0] if report.failed else ("", "")
        raise ReindexError(f"none of the {len(listed)} documents could be encoded again "
                           f"(first: {first[0]}: {first[1]}); {target} is left for you to remove")
    step("switching the service")
    indexer = str(switch_service(client, model, target).get("indexer", ""))
    if indexer == "committed":
        report.move_record = str(record_path(current))
    else:
        report.not_recorded = indexer.partition("not recorded: ")[2] or indexer
    return report
