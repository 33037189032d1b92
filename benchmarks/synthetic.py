"""Synthetic embeddings and ids for the benchmarks, and reading the process's memory, with
no memeflow import, so that a benchmark can run them under another checkout's code
(bench_store.py --baseline)."""

import numpy as np

DIM = 512
LATENT = 48


def clip_like(seed: int, n: int, dim: int = DIM) -> np.ndarray:
    """Normalised vectors with structure, generated in chunks (1M x 512 floats is 2 GB)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, LATENT)))[0].T
    spread = np.arange(1, LATENT + 1) ** -0.5
    spread /= np.linalg.norm(spread)
    mean = np.random.default_rng(1).standard_normal(dim)
    mean /= np.linalg.norm(mean)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = 0.8 * mean + (rng.standard_normal((m, LATENT)) * spread) @ basis
        x += rng.standard_normal((m, dim)) * (0.3 / np.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def isotropic(seed: int, n: int, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def doc_ids(n: int) -> list[str]:
    """32 hex digits, like memeflow's ids for files."""
    return [f"{(i * 0x9E3779B97F4A7C15 + 12345) % (1 << 128):032x}" for i in range(n)]


def rss_bytes() -> int:
    """The resident memory of this process (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
