"""The `memeflow` command: serve the Flow, index folders, search, count, status.

Exit codes: 0 done, 1 some input failed, 2 bad command line, 3 the service did not answer.
Every command a script may call takes `--json`; progress and errors go to stderr.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memeflow import config
from memeflow.cli.search_flags import add_search_flags, search_parameters

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
PREVIEW_COUNT = 3

EPILOG = """environment:
  MEMEFLOW_MODEL          Hugging Face id or local folder (default openai/clip-vit-base-patch32)
  MEMEFLOW_WORKSPACE      index folder (default ~/.local/share/memeflow/index)
  MEMEFLOW_GRPC_PORT      gRPC port of `serve` (default 51000)
  MEMEFLOW_HTTP_PORT      HTTP port of `serve` (default 51001)
  MEMEFLOW_HOST           Flow the other commands talk to (default grpc://localhost:51000)
  MEMEFLOW_OCR=1          read the words on memes at index time (`serve`; default off)
  MEMEFLOW_OCR_WEIGHT     `serve`: say of those words in text searches (default 1; 0: off)
  MEMEFLOW_ALLOW_RANDOM_WEIGHTS=1  accept a model folder without weights (tests only)
  MEMEFLOW_API_KEY        key sent to a Flow that requires one (and required by `serve`)

exit codes: 0 done, 1 some input failed, 2 bad command line, 3 service not answering
"""


class UsageError(Exception):
    """A command line that cannot work; the message names the input and the fix."""


def _client(args: argparse.Namespace):
    from memeflow.client import MemeClient

    try:
        return MemeClient(args.host)
    except ValueError as exc:  # a malformed --host / MEMEFLOW_HOST
        raise UsageError(str(exc)) from exc


def _error(message: str) -> None:
    print(f"memeflow: {message}", file=sys.stderr)


def _print_json(data: Any) -> None:
    print(json.dumps(data))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    from memeflow.cli.serve import serve

    return serve(Path(args.flow) if args.flow else None, args.ready_timeout)


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from memeflow.client.files import find_images

    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    if not args.prune:
        for path in missing:
            _error(f"no such file or folder: {path} (check the path; to drop what was indexed "
                   f"from it, run `memeflow index --prune {path}`)")
    client = _client(args)
    paths = [p for p in args.paths if p not in missing]
    total = sum(1 for _ in find_images(paths))
    with tqdm(total=total, unit="img", desc="indexing", disable=args.quiet or not total,
              file=sys.stderr) as bar:
        report = client.index_paths(paths, batch_size=args.batch_size, on_progress=bar.update)
    if args.prune:
        report.pruned = client.prune(args.paths)
    if args.json:
        _print_json(report.as_dict())
    else:
        for file, reason in report.failed:
            print(f"failed: {file}: {reason}")
        pruned = f", {len(report.pruned)} pruned" if args.prune else ""
        print(f"{len(report.encoded)} encoded, {len(report.moved)} moved, "
              f"{len(report.copied)} copied, {len(report.unchanged)} unchanged, "
              f"{len(report.failed)} failed{pruned}")
    stuck = report.failed and not (report.indexed or report.unchanged)
    return EXIT_FAILED if (missing and not args.prune) or stuck else 0


def _show_hits(args: argparse.Namespace, hits: list[dict[str, Any]]) -> None:
    from memeflow.cli.preview import TRUECOLOR, colour_mode, side_by_side

    mode = None if args.preview == "never" else colour_mode(sys.stdout)
    if args.preview == "always":
        mode = mode or TRUECOLOR
    if mode and hits:
        shown = hits[:PREVIEW_COUNT]
        labels = [f"{h['rank']}. {h['score']:.3f} {Path(h['uri'] or h['id']).name}" for h in shown]
        print(side_by_side([h["uri"] for h in shown], labels, mode))
    for hit in hits:  # "words" marks a meme found by the words written on it
        found = "words" if "words" in hit["signals"] else ""
        print(f"{hit['rank']:>3}  {hit['score']:.4f}  {found:<5}  {hit['uri'] or hit['id']}")


def cmd_search(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.image is None):
        raise UsageError("give a TEXT or --image FILE (one of them)")
    if args.image and not Path(args.image).expanduser().is_file():
        _error(f"no such image file: {args.image} (check the path)")
        return EXIT_FAILED
    try:
        options = search_parameters(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    client = _client(args)
    try:
        if args.image:
            hits = client.search_image(Path(args.image), top_k=args.k, **options)
        else:
            hits = client.search_query(args.text, top_k=args.k, **options)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConnectionError):
            raise
        _error(str(exc))
        return EXIT_FAILED
    if args.json:
        fields = ("rank", "id", "uri", "score", "signals", "words")
        _print_json([{k: h[k] for k in fields} for h in hits])
    else:
        _show_hits(args, hits)
    if args.open:
        from memeflow.cli.preview import open_files

        local = [h["uri"] for h in hits[: args.open] if h["uri"] and Path(h["uri"]).is_file()]
        if not local:
            _error("none of the results is a file on this machine: nothing to open")
            return EXIT_FAILED
        try:
            open_files(local)
        except OSError as exc:
            _error(str(exc))
            return EXIT_FAILED
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    is_file = Path(args.image).expanduser().is_file()
    try:
        ranked = _client(args).rank(args.texts, image=Path(args.image) if is_file else None,
                                    doc_id=None if is_file else args.image)
    except (OSError, ValueError) as exc:
        print(f"memeflow: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(ranked))
    else:
        for item in ranked:
            print(f"{item['probability']:.4f}  {item['cosine']:+.4f}  {item['text']}")
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    count = _client(args).count()
    print(json.dumps({"count": count}) if args.json else count)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    deleted = _client(args).delete(args.ids)
    print(json.dumps({"deleted": deleted}) if args.json else f"{deleted} deleted")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    if not args.yes:
        raise UsageError("clear removes every indexed document; add --yes to confirm")
    _client(args).clear()
    if args.json:
        _print_json({"count": 0})
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """What the service runs, or, when it does not answer, what `serve` here would use."""
    status: dict[str, Any] = {
        "host": args.host,
        "ports": {"grpc": config.grpc_port(), "http": config.http_port()},
    }
    try:
        status.update(answering=True, **_client(args).status())
    except ConnectionError:
        status.update(answering=False, model=config.model_name(),
                      workspace=str(config.workspace()))
    if args.json:
        _print_json(status)
    else:
        state = "answering" if status["answering"] else "NOT answering: run `memeflow serve`"
        lines = [("service", f"{args.host} ({state})"),
                 ("ports", f"gRPC {status['ports']['grpc']}, HTTP {status['ports']['http']}"),
                 ("model", status["model"] + (" (random weights: results carry no meaning)"
                                              if status.get("random_weights") else "")),
                 ("workspace", status["workspace"])]
        if status["answering"]:
            if status.get("runtime"):  # which hardware the encoder uses, and why
                features = ", ".join(status.get("cpu_features") or []) or "none of note"
                gpu = f" ({status['gpu']})" if status.get("gpu") else ""
                lines += [("runtime", f"{status['runtime']} {status.get('precision', '')} on "
                                      f"{status.get('device', 'cpu')}{gpu}"),
                          ("cpu", f"{status.get('cpu', '?')} ({features})")]
            lines += [("documents", status["count"]), ("dimension", status["dim"]),
                      ("words", "read on memes at index time (OCR)" if status.get("ocr")
                       else "not read (MEMEFLOW_OCR=1 at `serve` turns it on)")]
        for name, value in lines:
            print(f"{name + ':':<11}{value}")
    return 0 if status["answering"] else EXIT_UNREACHABLE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memeflow", description="Neural search for memes: index folders, find by words or "
        "by example.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None,
                        help="the Flow to talk to (default $MEMEFLOW_HOST or grpc://localhost:51000)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, summary: str, json_help: str | None = None):
        sub_parser = sub.add_parser(name, help=summary, description=summary)
        if json_help:
            sub_parser.add_argument("--json", action="store_true", help=json_help)
        sub_parser.set_defaults(func=func)
        return sub_parser

    serve = command("serve", cmd_serve, "start the Flow and keep it up (Ctrl-C stops it)")
    serve.add_argument("--flow", help="a Flow YAML of your own (default: the one memeflow ships)")
    serve.add_argument("--ready-timeout", type=float, default=600,
                       help="seconds to wait for the model to load (default 600)")

    index = command("index", cmd_index, "index image files and folders (recursively); moved "
                    "and renamed files are recognised by content", "print the report as JSON")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--prune", action="store_true",
                       help="also remove documents under PATH whose files no longer exist")
    index.add_argument("--batch-size", type=_positive_int, default=32)
    index.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    search = command("search", cmd_search, "find memes by a description or an example image",
                     "print [{rank, id, uri, score}]")
    search.add_argument("text", nargs="?", help="what the meme shows; combine terms as "
                        "\"cat + 2:hat - dog\" (N: weighs a term, a file path is an image)")
    search.add_argument("--image", metavar="FILE", help="search by this example image")
    search.add_argument("-k", type=_positive_int, default=10, help="number of results (default 10)")
    search.add_argument("--preview", choices=("auto", "always", "never"), default="auto",
                        help=f"thumbnails of the best {PREVIEW_COUNT} in a colour terminal "
                        "(auto: when stdout is one)")
    search.add_argument("--open", type=_positive_int, nargs="?", const=1, default=0, metavar="N",
                        help="open the best N results (default 1) in the desktop's viewer")
    add_search_flags(search)

    rank = command("rank", cmd_rank, "order texts by how well they describe an image "
                   "(CLIP zero-shot: softmax over 100 x cosine)",
                   "print [{text, probability, cosine}], best first")
    rank.add_argument("image", metavar="IMAGE", help="an image file, or the id of an indexed meme")
    rank.add_argument("texts", nargs="+", metavar="TEXT", help="candidate descriptions")

    command("count", cmd_count, "print the number of indexed documents", 'print {"count": N}')
    delete = command("delete", cmd_delete, "remove documents by id", 'print {"deleted": N}')
    delete.add_argument("ids", nargs="+", metavar="ID")
    clear = command("clear", cmd_clear, "remove every document", 'print {"count": 0}')
    clear.add_argument("--yes", action="store_true", help="confirm")
    command("status", cmd_status, "model, documents, dimension, workspace and ports of the "
            "service, and whether it answers", "print the status as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        args.host = args.host or config.host()
    try:
        return args.func(args)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ConnectionError:
        _error(f"cannot reach the service at {args.host}: start it with `memeflow serve`, or "
               "point --host / MEMEFLOW_HOST at a running one")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
