"""What animated images and videos cost beside stills, through the encoder's pipeline on
this machine: files/s and frames/s, the share of frame sampling (decode + choose) against
the model's embedding, and the memory one file takes while it is decoded.

    .venv/bin/python benchmarks/bench_frames.py                     # ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_frames.py --rounds 1 --files 2 --seconds 2   # a check
    .venv/bin/python benchmarks/bench_frames.py --flow   # and through a Flow, as users index

Inputs: real meme JPEGs (the stills, the baseline), the real animated GIFs of the shared
memes, and MP4 (H.264) and WebM (VP9) clips made from the memes (benchmarks/clips.py),
each `--seconds` long at `--fps`, `--side` pixels square, a new meme every second. Every
speed is the median over rounds; every ratio is the median of per-round ratios against
the stills timed in the same round, so load from other processes hits both alike. The
model has random weights unless MEMEFLOW_MODEL names a real checkpoint: speeds are real.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clips import video_bytes  # noqa: E402
from flowrun import MODEL, SHARED, load  # noqa: E402

from memeflow.documents import MemeDoc  # noqa: E402
from memeflow.encoder import hardware  # noqa: E402
from memeflow.encoder.decode import CLIP_SIDE, central_crop, decode_image  # noqa: E402
from memeflow.encoder.frames import FrameLimits, read_frames  # noqa: E402
from memeflow.encoder.model import ClipModel  # noqa: E402
from memeflow.encoder.pipeline import embed_documents  # noqa: E402
from memeflow.encoder.thumbnail import THUMBNAIL_SIDE  # noqa: E402

MEMES = SHARED / "data" / "memes" / "templates"
LIMITS = FrameLimits()


def inputs(files: int, seconds: int, fps: int, side: int) -> dict[str, list[bytes]]:
    """The bytes of each kind of file, `files` of each."""
    stills = sorted(MEMES.glob("*/default.jpg"))
    gifs = sorted(MEMES.glob("*/*.gif"))
    pictures = [Image.open(path) for path in stills[: files * seconds + 1]]

    def clip(index: int, suffix: str) -> bytes:
        scenes = [(pictures[(index * seconds + s) % len(pictures)], 1.0) for s in range(seconds)]
        return video_bytes(scenes, suffix, fps=fps, side=side)

    return {"still JPEG": [p.read_bytes() for p in stills[:files]],
            "animated GIF": [p.read_bytes() for p in gifs[:files]],
            "MP4 (H.264)": [clip(i, ".mp4") for i in range(files)],
            "WebM (VP9)": [clip(i, ".webm") for i in range(files)]}


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def encode(model: ClipModel, pool: ThreadPoolExecutor, blobs: list[bytes], batch: int
           ) -> tuple[float, int]:
    """Seconds to index `blobs` as /index does, and the frames embedded."""
    docs = [MemeDoc(blob=blob) for blob in blobs]
    seconds = timed(lambda: embed_documents(model, docs, pool, batch, thumbnails=True,
                                            keep_frames=True))
    assert all(doc.error is None for doc in docs), [doc.error for doc in docs]
    return seconds, sum(len(doc.frame_ms or [0]) for doc in docs)


def sample(blob: bytes) -> list[Image.Image]:
    """The frames the encoder would embed (decode + choose), or the still itself."""
    sampled = read_frames(blob, source="bench", limits=LIMITS,
                          side=max(CLIP_SIDE, THUMBNAIL_SIDE), max_pixels=None)
    return sampled.images if sampled is not None else [decode_image(blob)]


# Run in a fresh interpreter that imports only the frame decoders (no torch): resets the
# peak resident size after start-up (Linux: /proc/self/clear_refs), then samples one file.
MEMORY_PROBE = """
import sys
from pathlib import Path
from memeflow.encoder.frames import FrameLimits, read_frames
from memeflow.encoder.decode import decode_image
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
def sample(blob):
    got = read_frames(blob, source="probe", limits=FrameLimits(), side=256, max_pixels=None)
    return got.images if got is not None else [decode_image(blob)]
sample(Path(sys.argv[2]).read_bytes())  # imports and allocators warm
blob = Path(sys.argv[1]).read_bytes()
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS:")
images = sample(blob)
print(status("VmHWM:") - before, sum(i.width * i.height * 3 for i in images))
"""


def peak_growth(blob: bytes) -> tuple[int, int]:
    """How far the peak resident memory of a fresh process rose while `blob` was decoded
    and sampled, and the bytes of the frames kept (RGB)."""
    with tempfile.NamedTemporaryFile() as file:
        file.write(blob)
        file.flush()
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, file.name,
                              str(MEMES / "drake" / "default.jpg")], check=True,
                             capture_output=True, text=True, cwd=REPO).stdout.split()
    return int(out[0]), int(out[1])


SUFFIXES = {"still JPEG": ".jpg", "animated GIF": ".gif", "MP4 (H.264)": ".mp4",
            "WebM (VP9)": ".webm"}


def through_the_flow(kinds: dict[str, list[bytes]], rounds: int
                     ) -> dict[str, list[tuple[float, float]]]:
    """Per kind and round, (files/s, frames/s) of `memeflow index` on a folder of them through
    a running Flow (the client sends each file's bytes; the index is cleared before each
    folder, so every file is encoded). Frames are counted as the encoder chooses them."""
    from flowrun import running_flow

    from memeflow.client import MemeClient

    frames = {kind: sum(len(sample(blob)) for blob in blobs) for kind, blobs in kinds.items()}
    speeds: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp, running_flow(Path(tmp) / "flow.log") as ports:
        folders = {}
        for number, (kind, blobs) in enumerate(kinds.items()):
            folders[kind] = Path(tmp) / f"kind{number}"
            folders[kind].mkdir()
            for index, blob in enumerate(blobs):
                (folders[kind] / f"{index}{SUFFIXES[kind]}").write_bytes(blob)
        client = MemeClient(f"grpc://127.0.0.1:{ports.grpc}")
        client.index_paths([folders["still JPEG"]])  # warm up
        for round_ in range(rounds):
            for kind, blobs in kinds.items():
                client.clear()
                seconds = timed(lambda kind=kind: client.index_paths([folders[kind]]))
                assert client.count() == len(blobs), f"{kind}: not all indexed"
                speeds[kind].append((len(blobs) / seconds, frames[kind] / seconds))
            print(f"  Flow round {round_ + 1} done ({load()})", flush=True)
    return speeds


def print_speeds(title: str, speeds: dict[str, list[tuple[float, float]]]) -> None:
    """Medians of files/s and frames/s, and of each round's frames/s against the stills'
    images/s in the same round (the issue's ratio: 1.0 when a frame costs what a still does)."""
    print(title)
    base = speeds["still JPEG"]
    for kind, values in speeds.items():
        files = statistics.median(f for f, _ in values)
        frames = statistics.median(r for _, r in values)
        ratio = statistics.median(f / b for (f, _), (b, _) in zip(values, base, strict=True))
        per_frame = statistics.median(r / b for (_, r), (b, _) in zip(values, base, strict=True))
        print(f"  {kind:14} {files:7.2f} files/s {frames:7.1f} frames/s  files {ratio:5.2f}x, "
              f"frames {per_frame:5.2f}x the stills' images/s")


def cpu_line() -> str:
    flags = " ".join(hardware.cpu_features()) or "none of note"
    return f"CPU {hardware.cpu_name()}, {os.cpu_count()} cores, flags: {flags}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=8, help="files of each kind")
    parser.add_argument("--seconds", type=int, default=6, help="length of each clip")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--side", type=int, default=320, help="clips' side in pixels")
    parser.add_argument("--flow", action="store_true",
                        help="also through a running Flow, as `memeflow index` sends files")
    args = parser.parse_args()
    import av

    print(f"bench_frames: PyAV {av.__version__}, torch {torch.__version__}, {load()}\n"
          f"{cpu_line()}\n{args.files} files of each kind; clips {args.seconds} s at "
          f"{args.fps} fps, {args.side}x{args.side}; at most {LIMITS.max_frames} frames a file")
    kinds = inputs(args.files, args.seconds, args.fps, args.side)
    model = ClipModel(MODEL, allow_random=True)
    batch = hardware.default_batch_size(model.device.type)
    workers = hardware.default_decode_threads(model.device.type)
    speeds: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    with ThreadPoolExecutor(workers) as pool:
        encode(model, pool, kinds["still JPEG"][:2], batch)  # warm up
        for round_ in range(args.rounds):
            for kind, blobs in kinds.items():
                seconds, frames = encode(model, pool, blobs, batch)
                speeds[kind].append((len(blobs) / seconds, frames / seconds))
            print(f"  round {round_ + 1} done ({load()})", flush=True)

    print_speeds(f"\nThrough the encoder's pipeline (/index: batches of {batch}, {workers} "
                 f"decode threads), medians of {args.rounds} rounds:", speeds)

    print("\nSampling (decode + choose frames) against embedding those frames, per file:")
    for kind, blobs in kinds.items():
        sampling, embedding, counts = [], [], []
        for blob in blobs:
            images: list[Image.Image] = []
            sampling.append(timed(lambda blob=blob, images=images: images.extend(sample(blob))))
            pixels = torch.stack([model.preprocess(central_crop(image)) for image in images])
            embedding.append(timed(lambda pixels=pixels: model.embed_pixels(pixels)))
            counts.append(len(images))
        share = statistics.median(s / (s + e) for s, e in zip(sampling, embedding, strict=True))
        print(f"  {kind:14} sampling {1000 * statistics.median(sampling):7.1f} ms, embedding "
              f"{1000 * statistics.median(embedding):7.1f} ms ({statistics.median(counts):.0f} "
              f"frames): sampling is {100 * share:4.1f}% of the two")

    print("\nMemory while one file is decoded and sampled, in a fresh process each (peak "
          "resident growth; the largest file of each kind):")
    for kind, blobs in kinds.items():
        largest = max(blobs, key=len)
        growth, kept = peak_growth(largest)
        print(f"  {kind:14} {len(largest) / 2**20:6.2f} MiB file: peak +{growth / 2**20:6.1f} "
              f"MiB, frames kept {kept / 2**20:5.1f} MiB")
    if args.flow:
        print_speeds(f"\nThrough the Flow (`memeflow index` of a folder of each kind), medians "
                     f"of {args.rounds} rounds:", through_the_flow(kinds, args.rounds))
    print(f"\ndone ({load()})")


if __name__ == "__main__":
    main()
