"""Start the real Flow (`memeflow serve`'s supervisor) for a benchmark, on free ports."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = os.environ.get("MEMEFLOW_MODEL") or str(
    SHARED / "models" / "clip-vit-base-patch32-noweights"
)


def load() -> str:
    """The load average, printed beside results: other work on the machine skews them."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass(frozen=True)
class Ports:
    grpc: int
    http: int


@contextlib.contextmanager
def running_flow(log: Path, workspace: Path | None = None, **env: str) -> Iterator[Ports]:
    """gateway -> encoder -> indexer on free ports; a temporary workspace unless one is given."""
    from memeflow.cli.exposure import free_port_run
    from memeflow.cli.serve import FlowProcess

    ports = Ports(free_port_run(1), free_port_run(1))
    with contextlib.ExitStack() as stack:
        if workspace is None:
            workspace = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        log_file = stack.enter_context(log.open("a"))
        saved = dict(os.environ)
        os.environ.update({
            "MEMEFLOW_MODEL": MODEL,
            "MEMEFLOW_ALLOW_RANDOM_WEIGHTS": "1",
            "MEMEFLOW_WORKSPACE": str(workspace),
            "MEMEFLOW_GRPC_PORT": str(ports.grpc),
            "MEMEFLOW_HTTP_PORT": str(ports.http),
            "JINA_OPTOUT_TELEMETRY": "1",
            **env,  # may name another model
        })
        try:
            with FlowProcess(log=log_file):
                yield ports
        finally:
            os.environ.clear()
            os.environ.update(saved)
