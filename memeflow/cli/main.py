"""The `memeflow` command: serve the Flow, index folders, search, count, status.

Exit codes: 0 done, 1 some input failed, 2 bad command line, 3 the service did not answer.
Every command a script may call takes `--json`; progress and errors go to stderr. An error
is one line, `memeflow: MESSAGE`, naming the input and the fix; `--verbose` adds the
traceback (and the service's, when it sent one). Text that came from outside (file names,
uris, tags, words read on memes, the service's messages) is printed through `shown`, so
it can neither drive the terminal nor split a line; `--json` prints it unchanged (JSON
escapes control characters itself).
"""

import argparse
import json
import os
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from memeflow import __version__, config
from memeflow.cli.search_flags import add_search_flags, search_parameters
from memeflow.params import DEFAULT_TOP_K
from memeflow.query import is_existing_file
from memeflow.uris import terminal_safe as shown

if TYPE_CHECKING:
    from memeflow.cli.reindex import ReindexReport
    from memeflow.client import Hit, MemeClient

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
  MEMEFLOW_ALLOWED_HOSTS  `serve` without a key: names besides localhost the HTTP port answers

exit codes: 0 done, 1 some input failed, 2 bad command line, 3 service not answering
"""


T = TypeVar("T")


class UsageError(Exception):
    """A command line that cannot work; the message names the input and the fix."""


class InputFailed(Exception):
    """An input on this machine could not be used (an unreadable file, an image the client
    cannot send); the message names it. Shown as one line, exit code 1."""


def _asking(call: Callable[[], T]) -> T:
    """Run a client call; a local input's failure (OSError or ValueError that is not the
    service's answer) becomes InputFailed, and the service's own errors go on as they are."""
    try:
        return call()
    except (OSError, ValueError) as exc:
        if _is_service_error(exc):
            raise
        raise InputFailed(str(exc)) from exc


def _client(args: argparse.Namespace) -> "MemeClient":
    from memeflow.client import MemeClient

    try:
        return MemeClient(args.host)
    except ValueError as exc:  # a malformed --host / MEMEFLOW_HOST
        raise UsageError(str(exc)) from exc


def _error(message: str) -> None:
    print(f"memeflow: {shown(message)}", file=sys.stderr)


def _is_service_error(error: BaseException) -> bool:
    """Errors `main` reports: no answer, or an error from the service. (The client is not
    imported for this: `serve` never loads it, and a ServiceError implies it is loaded.)"""
    errors = sys.modules.get("memeflow.client.errors")
    return isinstance(error, ConnectionError | TimeoutError) or (
        errors is not None and isinstance(error, errors.ServiceError))


def _report(error: BaseException, verbose: bool, message: str | None = None) -> None:
    """One line on stderr; with --verbose first the traceback and the service's frames."""
    if verbose:  # line by line: a message in a traceback may quote outside text
        lines = "".join(traceback.format_exception(error)).splitlines()
        if details := getattr(error, "details", ""):
            lines += ["the service's traceback:", *details.splitlines()]
        print("\n".join(shown(line) for line in lines), file=sys.stderr)
    _error(message or str(error).split("\n")[0])


def _path(uri: str) -> str:
    """A path (or uri) as text mode prints it: terminal-safe (`shown`), then quoted as a
    POSIX shell reads it when it holds spaces or other characters the shell acts on, so
    it can be pasted back."""
    return shlex.quote(shown(uri))


def _print_json(data: Any) -> None:
    print(json.dumps(data))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    """The flags stand for their MEMEFLOW_* variables, which the Flow's processes read."""
    import os

    from memeflow.cli.serve import serve

    http_port = args.http_port or (args.port + 1 if args.port else None)
    for variable, value in (("MEMEFLOW_WORKSPACE", args.workspace), ("MEMEFLOW_MODEL", args.model),
                            ("MEMEFLOW_GRPC_PORT", args.port), ("MEMEFLOW_HTTP_PORT", http_port)):
        if value is not None:
            os.environ[variable] = str(value)
    watching = None
    if args.watch:
        from memeflow.cli import watch_command

        try:
            watching = watch_command.settings(args, args.watch)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return serve(Path(args.flow) if args.flow else None, args.ready_timeout, args.verbose,
                 watching)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return value


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from memeflow.client.files import scan_paths
    from memeflow.client.sync import gone_documents

    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    if not args.prune:
        for path in missing:
            _error(f"no such file or folder: {path} (check the path; to drop what was indexed "
                   f"from it, run `memeflow index --prune {path}`)")
    client = _client(args)
    paths = [p for p in args.paths if p not in missing]
    scan = scan_paths(paths, include_hidden=args.include_hidden)
    total = len(scan.files) + len(scan.failed)  # what the progress calls count
    with tqdm(total=total, unit="img", desc="indexing", disable=args.quiet or not total,
              file=sys.stderr) as bar:
        report = client.index_paths(paths, batch_size=args.batch_size, on_progress=bar.update,
                                    include_hidden=args.include_hidden)
    gone: list[str] = []
    if args.prune:
        report.pruned = client.prune(args.paths)
    else:  # documents of the walked folders whose files were deleted: say how to drop them
        folders = [p for p in paths if Path(p).expanduser().is_dir()]
        gone = [uri for _, uri in gone_documents(client, folders)]
    if args.json:
        _print_json({**report.as_dict(), "gone": gone})
    else:
        for old, new in report.moved:
            print(f"moved: {_path(old)} -> {_path(new)}")
        for uri in report.copied:
            print(f"copied: {_path(uri)}")
        for uri in report.pruned:
            print(f"pruned: {_path(uri)}")
        for file, reason in report.failed:  # reasons may quote a path
            print(f"failed: {_path(file)}: {shown(reason)}")
        skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
        pruned = f", {len(report.pruned)} pruned" if args.prune else ""
        print(f"{len(report.encoded)} encoded, {len(report.moved)} moved, "
              f"{len(report.copied)} copied, {len(report.unchanged)} unchanged, "
              f"{len(report.failed)} failed{skipped}{pruned}")
    if gone:
        folders_text = " ".join(_path(p) for p in args.paths)
        _error(f"{len(gone)} indexed file{'s' if len(gone) != 1 else ''} under "
               f"{folders_text} no longer exist{'s' if len(gone) == 1 else ''} on disk "
               f"(e.g. {_path(gone[0])}); `memeflow index --prune {folders_text}` drops "
               "them from the index")
    return EXIT_FAILED if (missing and not args.prune) or report.failed else 0


def cmd_watch(args: argparse.Namespace) -> int:
    from memeflow.cli import watch_command

    try:
        chosen = watch_command.settings(args, args.folders)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return watch_command.run(_client(args), chosen, args.host)


def _show_hits(args: argparse.Namespace, hits: list["Hit"]) -> None:
    from memeflow.cli.preview import TRUECOLOR, colour_mode, side_by_side

    mode = None if args.preview == "never" else colour_mode(sys.stdout)
    if args.preview == "always":
        mode = mode or TRUECOLOR
    if mode and hits:
        best = hits[:PREVIEW_COUNT]
        labels = [f"{h['rank']}. {h['score']:.3f} {shown(Path(h['uri'] or h['id']).name)}"
                  for h in best]
        print(side_by_side([_local(h["uri"]) for h in best], labels, mode))
    for hit in hits:  # "words" marks a meme found by the words written on it
        found = "words" if "words" in hit["signals"] else ""
        moment = f"  at {moment_text(ms)}" if (ms := hit.get("frame_ms")) is not None else ""
        print(f"{hit['rank']:>3}  {hit['score']:.4f}  {found:<5}  "
              f"{_path(hit['uri'] or hit['id'])}{moment}")


def moment_text(ms: int) -> str:
    """A time in a clip as people read it: 7250 -> '0:07.25', 3723000 -> '1:02:03.00'."""
    seconds, hundredths = divmod(round(ms / 10), 100)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return f"{clock}.{hundredths:02d}"


def _local(uri: str | None) -> str | None:
    """The file on this machine a result's uri names (a `file://` one too), or None."""
    from memeflow.client.moves import stored_path

    return stored_path(uri)


def cmd_search(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.image is None):
        raise UsageError("give a TEXT or --image FILE (one of them)")
    if args.image and not is_existing_file(args.image):
        _error(f"no such image file: {args.image} (check the path)")
        return EXIT_FAILED
    try:
        options = search_parameters(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    client = _client(args)
    if args.image:
        hits = _asking(lambda: client.search_image(Path(args.image), top_k=args.k, **options))
    else:
        hits = _asking(lambda: client.search_query(args.text, top_k=args.k, **options))
    if args.json:
        fields: Final = ("rank", "id", "uri", "score", "signals", "words")  # Hit's keys
        # frame_ms: only for an animated or video meme (when its best frame shows)
        _print_json([{**{k: h[k] for k in fields},
                      **({"frame_ms": h["frame_ms"]} if "frame_ms" in h else {})} for h in hits])
    elif hits:
        _show_hits(args, hits)
    elif client.count() == 0:
        print("no results: the index is empty (add memes with `memeflow index FOLDER`)")
    else:
        print("no results" + (" (the filters left none: try fewer)" if options.get("where")
                              or options.get("min_score") is not None else ""))
    if args.open:
        from memeflow.cli.preview import open_files

        local = [path for h in hits[: args.open]
                 if (path := _local(h["uri"])) and Path(path).is_file()]
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
    is_file = is_existing_file(args.image)
    client = _client(args)
    ranked = _asking(lambda: client.rank(args.texts, image=Path(args.image) if is_file else None,
                                         doc_id=None if is_file else args.image))
    if args.json:
        print(json.dumps(ranked))
    else:
        for item in ranked:
            print(f"{item['probability']:.4f}  {item['cosine']:+.4f}  {shown(item['text'])}")
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    count = _client(args).count()
    print(json.dumps({"count": count}) if args.json else count)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Each argument is a path when --path is given, when it exists on disk, or when it holds
    a path separator; an id otherwise."""
    client = _client(args)
    ids: dict[str, str | None] = {}
    not_found = []
    for item in args.items:
        if args.path or os.sep in item or Path(item).expanduser().exists():
            found = client.documents_under(item)  # that file, or a folder and all below
            if not found:
                not_found.append(item)
            ids.update(found)
        else:
            ids.setdefault(item, None)
    deleted = client.delete(list(ids)) if ids else 0
    for item in not_found:
        _error(f"nothing indexed at {_path(item)} (`memeflow list` shows what is)")
    if args.json:
        _print_json({"deleted": deleted})
    else:
        for uri in ids.values():
            if uri:
                print(f"deleted: {_path(uri)}")
        print(f"{deleted} deleted")
    return EXIT_FAILED if not_found else 0


def cmd_list(args: argparse.Namespace) -> int:
    """Indexed documents, by path prefix, a page at a time (sorted by path)."""
    from memeflow.client.moves import uri_prefixes

    client = _client(args)
    if args.prefix is None:
        found = client.list_documents()
    elif "://" in args.prefix:  # a URL's prefix, as stored
        found = client.list_documents(args.prefix)
    else:  # a path prefix, made absolute as index stores paths (a partial name stays partial)
        prefix = os.path.abspath(os.path.expanduser(args.prefix))
        if args.prefix.endswith(os.sep) and prefix != os.sep:
            prefix += os.sep
        found = sorted({pair for form in uri_prefixes(prefix)
                        for pair in client.list_documents(form)},
                       key=lambda pair: (pair[1] or "", pair[0]))
    page = found[args.offset : args.offset + args.limit if args.limit else None]
    if args.json:
        _print_json({"total": len(found), "offset": args.offset,
                     "documents": [{"id": doc_id, "uri": uri} for doc_id, uri in page]})
        return 0
    for doc_id, uri in page:
        print(f"{shown(doc_id)}  {_path(uri) if uri else '(no uri)'}")
    shown_to = args.offset + len(page)
    more = (f"; more with --offset {shown_to}" if shown_to < len(found) else "")
    where = f" under {_path(args.prefix)}" if args.prefix else ""
    print(f"{len(found)} document{'s' if len(found) != 1 else ''}{where}" + (
        f", {args.offset + 1}-{shown_to} shown{more}" if page and len(page) < len(found) else ""))
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    if not args.yes:
        raise UsageError("clear removes every indexed document; add --yes to confirm")
    client = _client(args)
    before = client.count()
    client.clear()
    if args.json:
        _print_json({"count": 0})
    else:
        print(f"{before} document{'s' if before != 1 else ''} removed; the index is empty")
    return 0


def _is_local(hostname: str) -> bool:
    return hostname in {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def cmd_status(args: argparse.Namespace) -> int:
    """What the service runs, or, when it does not answer, what `serve` here would use.
    The ports are the host's: the one it is reached on, and the other one when that host is
    this machine's `serve` (the same port as configured here); otherwise not known."""
    from memeflow.client import parse_host

    try:
        protocol, hostname, port = parse_host(args.host)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    local: dict[str, int | None] = {"grpc": config.grpc_port(), "http": config.http_port()}
    ports: dict[str, int | None] = {"grpc": None, "http": None, protocol: port}
    here = _is_local(hostname) and local[protocol] == port
    if here:
        ports = local
    status: dict[str, Any] = {"host": args.host, "ports": ports}
    try:
        status.update(answering=True, **_client(args).status())
    except ConnectionError:
        status.update(answering=False)
        if here:  # what `memeflow serve` on this machine would use
            status.update(_what_serve_would_use())
            if (place := _index_place()) is not None:  # the documents live in Milvus
                status.pop("workspace", None)
                status.update(index=place)
    if args.json:
        _print_json(status)
    else:
        state = "answering" if status["answering"] else "NOT answering: run `memeflow serve`"
        known = [f"{name} {ports[key]}" for key, name in (("grpc", "gRPC"), ("http", "HTTP"))
                 if ports[key] is not None]
        lines = [("service", f"{args.host} ({state})"),
                 ("ports", ", ".join(known) + ("" if here else " (the others: not known here)"))]
        if "model" in status:
            lines += [("model", status["model"]
                       + (f" ({status['family']} family)" if status.get("family") else "")
                       + (" (random weights: results carry no meaning)"
                          if status.get("random_weights") else "")),
                      # a folder, or where else the documents live (a Milvus collection)
                      ("index", status["index"]) if "index" in status
                      else ("workspace", status["workspace"])]
        if status["answering"]:
            if status.get("runtime"):  # which hardware the encoder uses, and why
                features = ", ".join(status.get("cpu_features") or []) or "none of note"
                gpu = f" ({status['gpu']})" if status.get("gpu") else ""
                lines += [("runtime", f"{status['runtime']} {status.get('precision', '')} on "
                                      f"{status.get('device', 'cpu')}{gpu}"),
                          ("cpu", f"{status.get('cpu', '?')} ({features})")]
            dim = status.get("dim")
            lines += [("documents", status["count"] or "none: the index is empty"),
                      ("dimension", dim if dim is not None else "none yet: the index is empty"),
                      ("words", "read on memes at index time (OCR)" if status.get("ocr")
                       else "not read (MEMEFLOW_OCR=1 at `serve` turns it on)")]
        for name, value in lines:  # the service's answers: shown like any outside text
            print(f"{name + ':':<11}{shown(value)}")
    return 0 if status["answering"] else EXIT_UNREACHABLE


def _what_serve_would_use() -> dict[str, str]:
    """The model and workspace `memeflow serve` here would start with, moves followed
    (memeflow.moved_workspace); as configured when it would refuse to start."""
    from memeflow.moved_workspace import for_serve
    from memeflow.workspace import WorkspaceError

    try:
        served = for_serve()
        return {"model": served.model or config.model_name(),
                "workspace": str(served.workspace)}
    except WorkspaceError:
        return {"model": config.model_name(), "workspace": str(config.workspace())}


def _index_place() -> str | None:
    """Where this machine's `memeflow serve` keeps the documents, as /status names it, when
    that is not a workspace (a Milvus server or Milvus Lite file); None for a workspace."""
    from memeflow.model_record import is_milvus_server

    index = config.index()
    if index is not None and (is_milvus_server(index) or index.endswith(".db")):
        return f"{index} (collection {config.collection_name()})"
    return None


def cmd_reindex(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from memeflow.cli.reindex import ReindexError, reindex
    from memeflow.uris import printable

    client = _client(args)
    bar = tqdm(unit="doc", desc="reindexing", disable=args.quiet, file=sys.stderr)

    def total(count: int) -> None:
        bar.total = count
        bar.refresh()

    def step(message: str) -> None:
        if not args.quiet:
            bar.write(f"memeflow: {message}", file=sys.stderr)

    try:
        with bar:
            report = reindex(client, args.model, Path(args.workspace) if args.workspace else None,
                             args.batch_size, on_total=total, on_progress=bar.update,
                             on_step=step)
    except ReindexError as exc:
        raise InputFailed(f"{exc}; the service still serves what it served") from exc
    if args.json:
        _print_json(report.as_dict())
    else:
        for name, reason in report.failed:
            print(printable(f"failed: {name}: {reason}"))
        print(f"{report.encoded} encoded, {len(report.failed)} failed (not in the new index); "
              f"the service now runs {report.model} on {report.workspace}")
        _after_reindex(report)
    return 0  # switched; files that could not be read are listed, as `index` lists them


def _after_reindex(report: "ReindexReport") -> None:
    """What the next `memeflow serve` does, and what became of the old workspace."""
    from memeflow.moved_workspace import same_model
    from memeflow.uris import printable

    if report.move_record is None:
        print(printable(f"the move could not be recorded ({report.not_recorded}): to serve it "
                        f"after a restart: MEMEFLOW_MODEL={report.model} "
                        f"MEMEFLOW_WORKSPACE={report.workspace} memeflow serve"))
        return
    print(printable(f"`memeflow serve` follows the move after a restart (recorded in "
                    f"{report.move_record})"))
    print(printable(f"the old workspace is kept as it was: {report.old_workspace}; "
                    f"`rm -r {report.old_workspace}` removes it (the record stays)"))
    named = config.configured_model()
    if named and not same_model(named, report.model):
        print(printable(f"memeflow: MEMEFLOW_MODEL is {named} here: `memeflow serve` with it "
                        f"refuses to start; unset it or set it to {report.model}"),
              file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> int:
    from memeflow.cli import eval_command
    from memeflow.encoder.source import ModelLoadError

    try:
        return eval_command.run(args)
    except (ValueError, ModelLoadError) as exc:
        raise UsageError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    from memeflow.cli.watch_command import add_arguments as add_watch_arguments
    from memeflow.cli.watch_command import add_watch_options

    parser = argparse.ArgumentParser(
        prog="memeflow", description="Neural search for memes: index folders, find by words or "
        "by example.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None,
                        help="the Flow to talk to (default $MEMEFLOW_HOST or grpc://localhost:51000)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="with an error, also print its traceback (and the service's); "
                        "with serve, the Flow's whole log while it starts")
    parser.add_argument("--version", action="version", version=f"memeflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], summary: str,
                json_help: str | None = None) -> argparse.ArgumentParser:
        sub_parser = sub.add_parser(name, help=summary, description=summary)
        if json_help:
            sub_parser.add_argument("--json", action="store_true", help=json_help)
        sub_parser.set_defaults(func=func)
        return sub_parser

    serve = command("serve", cmd_serve, "start the Flow and keep it up (Ctrl-C stops it)")
    serve.add_argument("--workspace", metavar="DIR",
                       help="the index folder (default $MEMEFLOW_WORKSPACE or "
                       "~/.local/share/memeflow/index)")
    serve.add_argument("--model", metavar="ID_OR_FOLDER",
                       help="a Hugging Face id or a local model folder (default $MEMEFLOW_MODEL "
                       f"or {config.DEFAULT_MODEL})")
    serve.add_argument("--port", type=_port, metavar="N",
                       help="gRPC port (default $MEMEFLOW_GRPC_PORT or "
                       f"{config.DEFAULT_GRPC_PORT}); the HTTP port and page follow on N+1 unless "
                       "--http-port is given")
    serve.add_argument("--http-port", type=_port, metavar="N",
                       help="HTTP port of the API and the search page (default "
                       f"$MEMEFLOW_HTTP_PORT or {config.DEFAULT_HTTP_PORT})")
    serve.add_argument("--flow", help="a Flow YAML of your own (default: the one memeflow ships)")
    serve.add_argument("--ready-timeout", type=float, default=600,
                       help="seconds to wait for the model to load (default 600)")
    serve.add_argument("--watch", nargs="+", metavar="FOLDER",
                       help="once ready, keep these folders indexed as `memeflow watch` does")
    add_watch_options(serve)

    index = command("index", cmd_index, "index image files and folders (recursively); moved "
                    "and renamed files are recognised by content", "print the report as JSON")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--prune", action="store_true",
                       help="also remove documents under PATH whose files no longer exist")
    index.add_argument("--batch-size", type=_positive_int, default=config.DEFAULT_INDEX_BATCH)
    index.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    index.add_argument("--include-hidden", action="store_true",
                       help="also index dot-files and dot-folders and NAS/OS system folders "
                       "(@eaDir, #recycle, $RECYCLE.BIN...); .memeflowignore still applies")

    search = command("search", cmd_search, "find memes by a description or an example image",
                     "print [{rank, id, uri, score}]")
    search.add_argument("text", nargs="?", help="what the meme shows; combine terms as "
                        "\"cat + 2:hat - dog\" (N: weighs a term, an image file's path is an "
                        "image; texts are cut at 77 tokens)")
    search.add_argument("--image", metavar="FILE", help="search by this example image")
    search.add_argument("-k", type=_positive_int, default=DEFAULT_TOP_K,
                        help=f"number of results (default {DEFAULT_TOP_K})")
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
    delete = command("delete", cmd_delete, "remove documents by id, or by path (a file, or a "
                     "folder and all below it, on disk or gone)", 'print {"deleted": N}')
    delete.add_argument("items", nargs="+", metavar="ID_OR_PATH",
                        help="an id, or a path (one that exists or holds a '/')")
    delete.add_argument("--path", action="store_true",
                        help="every argument is a path, even one without '/' that is gone")
    listing = command("list", cmd_list, "list indexed documents (id and path), sorted by path",
                      'print {"total", "offset", "documents": [{id, uri}]}')
    listing.add_argument("prefix", nargs="?", metavar="PREFIX",
                         help="only those whose path starts with this (a folder, or any "
                         "start of a path; relative to the current folder)")
    listing.add_argument("-n", "--limit", type=_positive_int, default=None,
                         help="at most this many (default: all)")
    listing.add_argument("--offset", type=_non_negative_int, default=0,
                         help="skip this many first (for the next page)")
    clear = command("clear", cmd_clear, "remove every document", 'print {"count": 0}')
    clear.add_argument("--yes", action="store_true", help="confirm")
    command("status", cmd_status, "model, documents, dimension, workspace and ports of the "
            "service, and whether it answers", "print the status as JSON")
    watch = command("watch", cmd_watch, "keep folders indexed: catch up on what changed, "
                    "then index new and changed files, re-file moved ones and remove deleted "
                    "ones as it happens (Ctrl-C stops)")
    add_watch_arguments(watch)
    reindex = command("reindex", cmd_reindex, "move the service to another model without "
                      "stopping search: encode every document again from its file into a new "
                      "workspace, then switch", "print the report as JSON")
    reindex.add_argument("--model", required=True, metavar="ID",
                         help="Hugging Face id or local folder of the new model")
    reindex.add_argument("--workspace", metavar="FOLDER", help="new, empty folder for the new "
                         "index (default: beside the serving one, named after the model)")
    reindex.add_argument("--batch-size", type=_positive_int, default=config.DEFAULT_INDEX_BATCH)
    reindex.add_argument("-q", "--quiet", action="store_true", help="no progress")

    from memeflow.cli.eval_command import add_arguments as add_eval_arguments

    add_eval_arguments(command(
        "eval", cmd_eval, "measure models on this machine: zero-shot top-1, text-to-image and "
        "image-to-image recall@1/5/10, images/s and text p50 (in this process, no service)",
        "print one result object per model"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        args.host = args.host or config.host()
    try:
        return args.func(args)
    except UsageError as exc:
        _report(exc, args.verbose)
        return EXIT_USAGE
    except InputFailed as exc:
        _report(exc, args.verbose)
        return EXIT_FAILED
    except ConnectionError as exc:
        _report(exc, args.verbose, f"cannot reach the service at {args.host}: start it with "
                "`memeflow serve`, or point --host / MEMEFLOW_HOST at a running one")
        return EXIT_UNREACHABLE
    except TimeoutError as exc:  # MemeClient's deadline: the service took too long
        _report(exc, args.verbose)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _is_service_error(exc):  # refused (the request) or failed (the service)
            _report(exc, args.verbose)
            return EXIT_FAILED
        # A fault of this program: still one line, the rest on request.
        first_line = str(exc).split("\n")[0]
        _report(exc, args.verbose, f"unexpected error: {type(exc).__name__}: {first_line} "
                "(run `memeflow --verbose ...` for the traceback, and report it)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
