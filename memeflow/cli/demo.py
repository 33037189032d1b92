"""The README's first command: serve the Flow, index the demo memes, show two searches.

    python -m memeflow.cli.demo [FOLDER]    (default: data/memes/templates)
"""

import sys
from pathlib import Path

from tqdm import tqdm

from memeflow import config
from memeflow.cli.serve import FlowProcess, ServiceError
from memeflow.client import Hit, MemeClient
from memeflow.client.files import find_images
from memeflow.encoder.source import ModelLoadError
from memeflow.uris import terminal_safe

QUERIES = ("drake rejecting something", "cat at a dinner table")
LOG = "memeflow-demo.log"


def show(title: str, hits: list[Hit]) -> None:
    print(f"\n{title}")
    for hit in hits:
        name = hit["tags"].get("name") or hit["tags"].get("folder", "")
        print(f"{hit['rank']:>3}  {hit['score']:.4f}  {terminal_safe(name):<28.28}  "
              f"{terminal_safe(hit['uri'])}")


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else Path(__file__).resolve().parents[2] / "data/memes/templates")
    if not folder.is_dir():
        print(f"no memes in {folder}: run `python data/fetch_memes.py` first", file=sys.stderr)
        return 2
    try:
        return demo(folder)
    except (ModelLoadError, ServiceError) as exc:
        print(f"memeflow demo: {exc}\n(the Flow's log is in {LOG})", file=sys.stderr)
        return 1


def demo(folder: Path) -> int:
    with open(LOG, "w") as log, FlowProcess(log=log):
        client = MemeClient()
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
