"""Which device, runtime and precision the encoder uses, decided once at start from what
the machine has and what is installed.

`runtime: auto` (the default) picks, in order: torch in fp16 on a CUDA GPU; OpenVINO on
a CPU when it is installed (bf16 where the CPU has AVX512_BF16 or AMX, f32 otherwise);
torch fp32 otherwise. Only runtimes whose vectors agree with torch fp32 to a mean cosine
of at least 0.999 on images and texts may be picked by `auto` (AUTO_ELIGIBLE; measured in
benchmarks/bench_encode.py and checked in tests/test_runtimes.py): int8 is not among them.
"""

import importlib.util
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from memeflow.encoder.source import ModelLoadError

logger = logging.getLogger(__name__)

RUNTIMES = ("torch", "int8", "onnx", "openvino")
CPU_ONLY_RUNTIMES = ("int8", "onnx", "openvino")
AUTO_ELIGIBLE = ("torch", "openvino")
PRECISIONS = ("auto", "f32", "f16", "bf16")
# The CPU flags that decide which kernels run fastest (Linux names, /proc/cpuinfo).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_bf16", "amx_int8", "amx_fp16")
# Per device: images per model call and threads reading/decoding them (BENCHMARKS.md).
# A GPU embeds a batch in milliseconds, so it needs larger batches and more decoders.
CPU_BATCH_SIZE, CPU_DECODE_THREADS = 16, 2
GPU_BATCH_SIZE = 64


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU_FLAGS this CPU has, e.g. ["avx2", "fma"]; [] where /proc/cpuinfo is absent."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return [flag for flag in CPU_FLAGS if flag in flags]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(setting: str) -> str:
    """"auto" | "cpu" | "cuda" | "cuda:N" -> "cpu" or "cuda:N".

    Raises ModelLoadError naming the fix when CUDA is asked for but torch sees none (or
    fewer GPUs than N + 1), or when the setting is none of these.
    """
    import torch  # here, so that `memeflow serve` can check settings without loading torch

    value = (setting or "auto").strip().lower()
    if value == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if value == "cuda" or value.startswith("cuda:"):
        index_text = value.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise ModelLoadError(f"device {setting!r}: write cuda:N, N a GPU number (cuda:0)")
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "without CUDA"
            raise ModelLoadError(
                f"device {setting!r} asked for, but torch sees no CUDA GPU (torch "
                f"{torch.__version__}, built {build}): set MEMEFLOW_DEVICE=cpu or auto, or "
                "install a CUDA build of torch on a machine with an NVIDIA GPU"
            )
        count = torch.cuda.device_count()
        if int(index_text) >= count:
            raise ModelLoadError(f"device {setting!r}: torch sees {count} CUDA GPU(s), "
                                 f"numbered 0 to {count - 1}")
        return f"cuda:{int(index_text)}"
    raise ModelLoadError(f"unknown device {setting!r}: choose auto, cpu, cuda or cuda:N")


def check_settings(device: str, precision: str) -> None:
    """What `memeflow serve` checks before starting the Flow: the device and precision
    settings make sense, and a CUDA device asked for exists (torch is loaded only then).
    Raises ModelLoadError with the fix."""
    check_precision(precision)
    if (device or "auto").strip().lower() not in ("auto", "cpu"):
        resolve_device(device)


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(setting: str, device: str) -> str:
    """"auto" or a name from RUNTIMES -> the runtime to load on `device` (already resolved).

    Raises ModelLoadError for an unknown name, or for a CPU-only runtime asked to run on a
    GPU (the message names the runtime that does run there).
    """
    value = (setting or "auto").strip().lower()
    if value == "auto":
        if device != "cpu":
            return "torch"
        return "openvino" if openvino_installed() else "torch"
    if value not in RUNTIMES:
        raise ModelLoadError(
            f"unknown runtime {setting!r}: choose auto or one of {', '.join(RUNTIMES)}"
        )
    if value in CPU_ONLY_RUNTIMES and device != "cpu":
        raise ModelLoadError(
            f"runtime {value!r} runs on the CPU only, not on {device}: use runtime torch "
            "(or auto) for a GPU, or set MEMEFLOW_DEVICE=cpu"
        )
    return value


def check_precision(setting: str | None) -> str:
    value = (setting or "auto").strip().lower()
    if value not in PRECISIONS:
        raise ModelLoadError(f"unknown precision {setting!r}: choose {', '.join(PRECISIONS)}")
    return value


def default_batch_size(device: str) -> int:
    return CPU_BATCH_SIZE if device == "cpu" else GPU_BATCH_SIZE


def default_decode_threads(device: str) -> int:
    """2 on a CPU (the model needs the cores); on a GPU every core but one decodes."""
    if device == "cpu":
        return CPU_DECODE_THREADS
    return max(CPU_DECODE_THREADS, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class Hardware:
    """What the encoder runs on, as `memeflow status` shows it."""

    runtime: str
    precision: str
    device: str
    gpu: str = ""  # the GPU's name when `device` is one
    cpu: str = field(default_factory=cpu_name)
    cpu_features: tuple[str, ...] = field(default_factory=lambda: tuple(cpu_features()))

    def describe(self) -> str:
        flags = ", ".join(self.cpu_features) or "none known"
        gpu = f" {self.gpu}" if self.gpu else ""
        return f"{self.runtime} {self.precision} on {self.device}{gpu} (CPU {self.cpu}: {flags})"
