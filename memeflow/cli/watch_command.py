"""`memeflow watch FOLDER...` and `memeflow serve --watch FOLDER...`: the command line of
`memeflow.client.watch`. Every line goes to stderr as `memeflow: watch: ...`, made
terminal-safe (file names come from outside); Ctrl-C or SIGTERM stops it, exit code 0."""

import argparse
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from memeflow import config
from memeflow.uris import terminal_safe

if TYPE_CHECKING:
    from memeflow.client.sync import Service
    from memeflow.client.watch import Settings


def say(message: str) -> None:
    print(f"memeflow: watch: {terminal_safe(message)}", file=sys.stderr, flush=True)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def _files(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    """--poll, --interval and --settle, shared by `watch` and `serve --watch`."""
    parser.add_argument("--poll", action="store_true",
                        help="look for changes every --interval seconds instead of waiting "
                        "for the file system's events (chosen by itself on network mounts "
                        "and when the kernel's inotify limit is reached)")
    interval = config.DEFAULT_POLL_INTERVAL
    parser.add_argument("--interval", type=_seconds, default=interval, metavar="SECONDS",
                        help=f"seconds between two polls (default {interval:g})")
    parser.add_argument("--settle", type=_seconds, default=1.0, metavar="SECONDS",
                        help="a new or changed file is indexed once its size and time have "
                        "not changed for this long (default 1)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", metavar="FOLDER",
                        help="folders to keep indexed, with everything below them")
    add_watch_options(parser)
    parser.add_argument("--batch-size", type=_files, default=config.DEFAULT_INDEX_BATCH,
                        help=f"files per request (default {config.DEFAULT_INDEX_BATCH})")
    parser.add_argument("--include-hidden", action="store_true",
                        help="also index dot-files and dot-folders and NAS/OS system folders; "
                        ".memeflowignore still applies")


def settings(args: argparse.Namespace, folders: list[str]) -> "Settings":
    """The watcher's settings from the command line; ValueError names a folder that is not
    one."""
    from memeflow.client.watch import Settings, folder_errors

    errors = folder_errors(folders)
    if errors:
        raise ValueError(errors[0])
    return Settings([os.path.abspath(os.path.expanduser(f)) for f in folders], poll=args.poll,
                    interval=args.interval, settle=args.settle,
                    batch_size=getattr(args, "batch_size", config.DEFAULT_INDEX_BATCH),
                    include_hidden=getattr(args, "include_hidden", False))


def run(client: "Service", chosen: "Settings", host: str) -> int:
    """`memeflow watch`: until Ctrl-C or SIGTERM, after the batch under way (a second one
    does not wait for it: exit code 130)."""
    from memeflow.client.watch import watch_folders

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for the batch under way
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watch_folders(client, chosen, stop, say, host)
    return 0


def in_background(client: "Service", chosen: "Settings", host: str, stop: threading.Event
                  ) -> threading.Thread:
    """`serve --watch`: the watcher in a thread of the supervisor, stopped with it."""
    from memeflow.client.errors import RequestRefused
    from memeflow.client.watch import watch_folders

    def watching() -> None:
        try:
            watch_folders(client, chosen, stop, say, host)
        except RequestRefused as exc:
            say(f"stopped: {exc}")

    thread = threading.Thread(target=watching, name="watch", daemon=True)
    thread.start()
    return thread
