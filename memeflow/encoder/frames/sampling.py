"""Which frames of an animated image or a video to embed: the scene changes and an even
sample over time, at most `max_frames`, chosen while decoding with bounded memory.

A decoder offers frames in time order, each with a tiny greyscale signature
(`SIGNATURE_SIDE` squared, uint8). `FrameSampler` keeps two bounded sets of candidates, as
RGB images: an even sample (a grid whose step doubles whenever it holds too many, so its
size stays between `max_frames / 2` and `max_frames` whatever the length) and the strongest
scene changes (the frames least like the frame offered before them). `choose_frames`, a
pure function of the candidates' times and change scores, then picks the frames to embed.
"""

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

SIGNATURE_SIDE = 16  # pixels: enough to see a cut, blind to noise and compression
SCENE_CHANGE = 0.08  # mean absolute difference of two signatures (0..1) that counts as a cut
MIN_GAP_MS = 100  # frames closer than this to the last one offered are not offered


def change(previous: np.ndarray | None, signature: np.ndarray) -> float:
    """How unlike two signatures are, 0 (same) to 1; the first frame of a file is a change
    of 1 (it starts the first scene)."""
    if previous is None:
        return 1.0
    diff = np.abs(previous.astype(np.int16) - signature.astype(np.int16))
    return float(diff.mean()) / 255.0


def choose_frames(times_ms: Sequence[int], changes: Sequence[float], max_frames: int,
                  threshold: float = SCENE_CHANGE) -> list[int]:
    """Indices (ascending) of at most `max_frames` of the candidates to embed.

    `times_ms` ascending; `changes[i]` how unlike candidate i is to the frame before it.
    The scene changes (`changes >= threshold`), strongest first, up to half the frames;
    the rest an even sample in time from the first candidate to the last, each slot
    taking the candidate nearest its time that is not yet chosen.
    """
    count = len(times_ms)
    if count != len(changes):
        raise ValueError(f"{count} times but {len(changes)} changes")
    if count <= max_frames:
        return list(range(count))
    cuts = sorted((i for i in range(1, count) if changes[i] >= threshold),
                  key=lambda i: (-changes[i], i))
    chosen = set(cuts[: max_frames // 2])
    slots = max_frames - len(chosen)
    times = np.asarray(times_ms, dtype=np.float64)
    targets = np.linspace(times[0], times[-1], slots)
    for target in [*targets[:1], *targets[1:][-1:], *targets[1:-1]]:  # both ends first
        order = np.argsort(np.abs(times - target), kind="stable")
        chosen.add(next(int(i) for i in order if int(i) not in chosen))
    return sorted(chosen)


@dataclass(order=True)
class Candidate:
    """A frame kept for the final choice: its time, its change score and its pixels."""

    time_ms: int
    change: float = field(compare=False)
    image: Image.Image = field(compare=False, repr=False)


class FrameSampler:
    """Keeps at most `2 * max_frames + 1` frames of a stream of any length (see the module
    docstring); `chosen()` gives the frames to embed, in time order."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.step_ms = MIN_GAP_MS
        self.grid: list[Candidate] = []  # the even sample, in time order
        self.scenes: list[tuple[float, int, Candidate]] = []  # min-heap by change
        self.previous: np.ndarray | None = None
        self.last_offered_ms: int | None = None
        self.last_change = 1.0
        self.count = 0  # frames offered

    def wants(self, time_ms: int) -> bool:
        """Whether a frame at `time_ms` is worth a signature (not too close to the last)."""
        return self.last_offered_ms is None or time_ms - self.last_offered_ms >= MIN_GAP_MS

    def offer(self, time_ms: int, signature: np.ndarray, load: Callable[[], Image.Image]
              ) -> None:
        """A decoded frame; `load()` makes its RGB image, called only if it is kept."""
        score = change(self.previous, signature)
        self.previous, self.last_offered_ms, self.last_change = signature, time_ms, score
        self.count += 1
        image: Image.Image | None = None
        on_grid = not self.grid or time_ms - self.grid[-1].time_ms >= self.step_ms
        if on_grid:
            image = load()
            self.grid.append(Candidate(time_ms, score, image))
            if len(self.grid) > self.max_frames:
                self.grid = self.grid[::2]
                self.step_ms *= 2
        if score >= SCENE_CHANGE and (len(self.scenes) < self.max_frames
                                      or score > self.scenes[0][0]):
            kept = Candidate(time_ms, score, image if image is not None else load())
            entry = (score, self.count, kept)
            if len(self.scenes) < self.max_frames:
                heapq.heappush(self.scenes, entry)
            else:
                heapq.heapreplace(self.scenes, entry)

    def finish(self, time_ms: int, signature: Callable[[], np.ndarray],
               load: Callable[[], Image.Image]) -> None:
        """The last frame read, offered or not: always a candidate, so that the even sample
        reaches the end of what was read."""
        if self.last_offered_ms != time_ms:
            self.offer(time_ms, signature(), load)
        if any(c.time_ms == time_ms for c in self.grid):
            return
        scene = next((c.image for _, _, c in self.scenes if c.time_ms == time_ms), None)
        self.grid.append(Candidate(time_ms, self.last_change,
                                   scene if scene is not None else load()))

    def chosen(self) -> list[Candidate]:
        """The frames to embed (`choose_frames` over every candidate), in time order."""
        by_time: dict[int, Candidate] = {c.time_ms: c for c in self.grid}
        for _, _, candidate in self.scenes:
            by_time[candidate.time_ms] = candidate
        candidates = sorted(by_time.values())
        picked = choose_frames([c.time_ms for c in candidates],
                               [c.change for c in candidates], self.max_frames)
        return [candidates[i] for i in picked]
