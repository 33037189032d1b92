"""The `memeflow` command: serve the Flow, index folders, search, count."""

import argparse
import json
import sys
from pathlib import Path

from memeflow import config

EPILOG = """environment:
  MEMEFLOW_MODEL          Hugging Face id or local folder (default openai/clip-vit-base-patch32)
  MEMEFLOW_WORKSPACE      index folder (default ~/.local/share/memeflow/index)
  MEMEFLOW_GRPC_PORT      gRPC port of `serve` (default 51000)
  MEMEFLOW_HTTP_PORT      HTTP port of `serve` (default 51001)
  MEMEFLOW_HOST           Flow the other commands talk to (default grpc://localhost:51000)
  MEMEFLOW_ALLOW_RANDOM_WEIGHTS=1  accept a model folder without weights (tests only)
"""


def _client(args: argparse.Namespace):
    from memeflow.client import MemeClient

    return MemeClient(args.host)


def cmd_serve(args: argparse.Namespace) -> int:
    from memeflow.service import serve

    return serve(Path(args.flow) if args.flow else None, args.ready_timeout)


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from memeflow.files import find_images

    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    for path in missing:
        print(f"memeflow: no such file or folder: {path}", file=sys.stderr)
    client = _client(args)
    paths = [p for p in args.paths if p not in missing]
    total = sum(1 for _ in find_images(paths))
    with tqdm(total=total, unit="img", desc="indexing", disable=args.quiet) as bar:
        report = client.index_paths(paths, batch_size=args.batch_size, on_progress=bar.update)
    if args.json:
        print(json.dumps({
            "indexed": len(report.indexed), "unchanged": len(report.unchanged),
            "failed": [{"file": f, "reason": r} for f, r in report.failed],
        }))
    else:
        for file, reason in report.failed:
            print(f"failed: {file}: {reason}")
        print(f"{len(report.indexed)} indexed, {len(report.unchanged)} unchanged, "
              f"{len(report.failed)} failed")
    return 1 if missing or (report.failed and not report.indexed and not report.unchanged) else 0


def cmd_search(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.image is None):
        print("memeflow: give a TEXT or --image FILE (one of them)", file=sys.stderr)
        return 2
    client = _client(args)
    try:
        if args.image:
            hits = client.search_image(Path(args.image), top_k=args.k)
        else:
            hits = client.search_text(args.text, top_k=args.k)
    except FileNotFoundError:
        print(f"memeflow: no such file: {args.image}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"memeflow: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{k: h[k] for k in ("rank", "id", "uri", "score")} for h in hits]))
    else:
        for hit in hits:
            print(f"{hit['rank']:>3}  {hit['score']:.4f}  {hit['uri'] or hit['id']}")
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    print(_client(args).count())
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    print(f"{_client(args).delete(args.ids)} deleted")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    if not args.yes:
        print("memeflow: clear removes every indexed document; add --yes to confirm",
              file=sys.stderr)
        return 2
    _client(args).clear()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memeflow", description="Neural search for memes: index folders, find by words or "
        "by example.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None,
                        help="the Flow to talk to (default $MEMEFLOW_HOST or grpc://localhost:51000)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the Flow and keep it up (Ctrl-C stops it)")
    serve.add_argument("--flow", help="Flow YAML (default ./flow.yml or the one shipped)")
    serve.add_argument("--ready-timeout", type=float, default=600,
                       help="seconds to wait for the model to load (default 600)")
    serve.set_defaults(func=cmd_serve)

    index = sub.add_parser("index", help="index image files and folders (recursively)")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--batch-size", type=int, default=32)
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    index.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    index.set_defaults(func=cmd_index)

    search = sub.add_parser("search", help="find memes by a description or an example image")
    search.add_argument("text", nargs="?", help="what the meme shows")
    search.add_argument("--image", metavar="FILE", help="search by this example image")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--json", action="store_true", help="print [{rank, id, uri, score}]")
    search.set_defaults(func=cmd_search)

    count = sub.add_parser("count", help="print the number of indexed documents")
    count.set_defaults(func=cmd_count)

    delete = sub.add_parser("delete", help="remove documents by id")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(func=cmd_delete)

    clear = sub.add_parser("clear", help="remove every document")
    clear.add_argument("--yes", action="store_true", help="confirm")
    clear.set_defaults(func=cmd_clear)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        args.host = args.host or config.host()
    try:
        return args.func(args)
    except ConnectionError:
        print(f"memeflow: cannot reach the Flow at {args.host}: is `memeflow serve` running? "
              "Otherwise set --host or MEMEFLOW_HOST.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
