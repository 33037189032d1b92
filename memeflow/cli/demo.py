"""The README's first command: serve the Flow, index the demo memes, show two searches.

    python -m memeflow.cli.demo [FOLDER]    (default: data/memes/templates)

The demo keeps its index in a workspace of its own (`demo_workspace()`), never in the
user's (MEMEFLOW_WORKSPACE or the default): its memes, and the random-weight vectors of
the offline recipe, must not end up beside the user's own, where a later `memeflow serve`
with the real model would refuse them.
"""

import os
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from memeflow import config
from memeflow.cli.serve import FlowProcess, ServiceError
from memeflow.cli.startup import bound_host, progress_line
from memeflow.client import Hit, MemeClient
from memeflow.client.files import find_images
from memeflow.encoder.source import ModelLoadError
from memeflow.uris import terminal_safe

QUERIES = ("drake rejecting something", "cat at a dinner table")
LOG = "memeflow-demo.log"
# The encoder's refusal of a workspace holding another model's vectors (identity.mismatch).
OTHER_MODEL = "holds vectors of"


def demo_workspace() -> Path:
    """$XDG_DATA_HOME/memeflow/demo (~/.local/share/memeflow/demo): beside the user's
    default index, never it."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "memeflow" / "demo"


def show(title: str, hits: list[Hit]) -> None:
    print(f"\n{title}")
    for hit in hits:
        name = hit["tags"].get("name") or hit["tags"].get("folder", "")
        print(f"{hit['rank']:>3}  {hit['score']:.4f}  {terminal_safe(name):<28.28}  "
              f"{terminal_safe(hit['uri'])}")


def say(message: str) -> None:
    print(progress_line(message), flush=True)


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else Path(__file__).resolve().parents[2] / "data/memes/templates")
    if not folder.is_dir():
        print(f"no memes in {folder}: run `python data/fetch_memes.py` first", file=sys.stderr)
        return 2
    workspace = demo_workspace()
    # Every process of the Flow reads the workspace from here (serve passes it on).
    os.environ["MEMEFLOW_WORKSPACE"] = str(workspace)
    print(f"The demo indexes {folder} into a workspace of its own, {workspace}; your index "
          "(MEMEFLOW_WORKSPACE, or ~/.local/share/memeflow/index) is not touched.", flush=True)
    try:
        try:
            return demo(folder)
        except (ModelLoadError, ServiceError) as exc:
            if OTHER_MODEL not in str(exc):
                raise
            say(f"the demo's workspace holds vectors of another model: emptying {workspace}")
            shutil.rmtree(workspace)
            return demo(folder)
    except (ModelLoadError, ServiceError) as exc:
        print(f"memeflow demo: {exc}\n(the Flow's log is in {LOG})", file=sys.stderr)
        return 1


def demo(folder: Path) -> int:
    host = bound_host(config.bind_host())[0]
    with open(LOG, "w") as log, FlowProcess(log=log, progress=say):
        client = MemeClient(f"grpc://{host}:{config.grpc_port()}")  # this Flow, wherever
        # MEMEFLOW_HOST points
        files = list(find_images([folder]))
        with tqdm(total=len(files), unit="img", desc="indexing") as bar:
            report = client.index_paths([folder], on_progress=bar.update)
        print(f"{len(report.indexed)} indexed, {len(report.unchanged)} unchanged, "
              f"{len(report.failed)} failed; {client.count()} memes in the index")
        if config.allow_random_weights():
            print("\nMEMEFLOW_ALLOW_RANDOM_WEIGHTS is set: with a model folder without weights "
                  "the rankings below carry no meaning (a search by example still finds itself).")
        for query in QUERIES:
            show(f'search "{query}":', client.search_text(query, top_k=5))
        example = next((p for p in files if p.parent.name == "drake"), files[0])
        show(f"search by example {example}:", client.search_image(example, top_k=5))
    print(f"\n(the Flow's log is in {LOG})")
    print(f"The demo's index is in {config.workspace()}. To search it in the page, run\n"
          f"  memeflow serve --workspace {config.workspace()}\n"
          f"and open http://{host}:{config.http_port()}/ ; the README's \"Your own memes\" "
          "indexes your own folder.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
