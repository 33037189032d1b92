"""Delay from an image file written (closed) in a watched folder to its being searchable,
with `memeflow watch` in event mode and in polling mode, against a running service.

Each file is a meme with a few random pixels changed (so it is encoded, not re-filed as a
copy of a stored one), written in place and closed, as a program saving an image does; the
clock starts at the close and stops when the service returns the file's document (`/get`
asked every 20 ms). Files go one at a time, each after the previous one is searchable.
The delay is the settle time
(1 s by default: the file must stop changing), the batching quiet time (0.5 s), the
encoding, and in polling mode up to one `--interval`.

    python benchmarks/bench_watch.py [--host grpc://HOST:PORT] [--files 10] [--interval 2]

Without `--host`, a Flow with the no-weights test model is started on free ports.
"""

import argparse
import contextlib
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench_cli import cpu_flags
from flowrun import SHARED, load, running_flow

MEMES = SHARED / "data" / "memes" / "templates"
RUNNER = "import sys; from memeflow.cli.main import main; sys.exit(main())"


def unique_image(source: Path, rng: random.Random) -> bytes:
    """The meme's JPEG with a few pixels set at random: bytes no stored document has."""
    from PIL import Image

    image = Image.open(source).convert("RGB")
    for _ in range(8):
        xy = (rng.randrange(image.width), rng.randrange(image.height))
        image.putpixel(xy, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


@contextlib.contextmanager
def watcher(host: str, folder: Path, log: Path, *flags: str) -> Iterator[None]:
    """`memeflow watch FOLDER FLAGS` until the block ends; waits for its first catch-up."""
    env = dict(os.environ, MEMEFLOW_HOST=host)
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", RUNNER, "watch", str(folder), *flags],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "caught up" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"memeflow watch did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(30)


def delays(host: str, mode: str, flags: list[str], count: int, sources: list[Path]
           ) -> list[float]:
    """Seconds from each file's close to its document being there, one file at a time."""
    from memeflow.client import MemeClient
    from memeflow.client.files import file_id

    client = MemeClient(host)
    rng = random.Random(0)
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "memes"
        folder.mkdir()
        with watcher(host, folder, Path(tmp) / "watch.log", *flags):
            for i in range(count):
                data = unique_image(sources[i % len(sources)], rng)
                path = folder / f"{mode}-{i}.jpg"
                with path.open("wb") as out:
                    out.write(data)
                start = time.perf_counter()
                doc_id = file_id(path)
                while not client.documents([doc_id]):
                    if time.perf_counter() - start > 120:
                        raise SystemExit(f"{path} not searchable after 120 s")
                    time.sleep(0.02)
                found.append(time.perf_counter() - start)
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="a running service (default: start one)")
    parser.add_argument("--files", type=int, default=10, help="files per mode (default 10)")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="polling mode's --interval in seconds (default 2)")
    args = parser.parse_args()
    sources = [p for p in sorted(MEMES.glob("*/default.jpg")) if not p.parent.name.startswith("_")]
    modes = {"events": [], "polling": ["--poll", "--interval", f"{args.interval:g}"]}
    print(f"bench_watch: {cpu_flags()}; {load()}")
    with contextlib.ExitStack() as stack:
        host = args.host
        if host is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            ports = stack.enter_context(running_flow(tmp / "flow.log"))
            host = f"grpc://127.0.0.1:{ports.grpc}"
        for mode, flags in modes.items():
            found = delays(host, mode, flags, args.files, sources)
            print(f"{mode:<8} {' '.join(flags) or '(default)':<20} files {len(found):>3}  "
                  f"median {statistics.median(found):6.2f} s  p50 {percentile(found, 50):6.2f} s"
                  f"  p99 {percentile(found, 99):6.2f} s")
    print(f"bench_watch: done; {load()}")


if __name__ == "__main__":
    main()
