"""Let torchvision's pure-Python transforms import when its compiled operators cannot load.

PyPI's torchvision wheels are built against PyPI's (CUDA) torch. Beside a CPU-only torch,
their `_C` library cannot load (`libc10_cuda.so` is missing); torchvision then skips its
operators, but its import still registers fake kernels for `torchvision::nms` and
`torchvision::qnms` unconditionally and fails with "operator torchvision::nms does not exist"
(pytorch/vision#9085). open_clip uses only torchvision's transforms, which need no compiled
operator, so defining those two schemas before the import is enough; torchvision's own
`_has_ops()` still reports the operators missing, and calling one raises.
"""

import importlib.util
from pathlib import Path

import torch

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_schemas: list[torch.library.Library] = []  # kept alive: a Library unregisters when freed


def allow_import_without_compiled_ops() -> bool:
    """Before the first import of torchvision: if its compiled library does not load here
    because a library it links is missing (a CUDA build beside a CPU-only torch), define the
    operator schemas its import registers fakes for. Returns True when it did
    (torchvision then works without its operators: transforms yes, detection ops no)."""
    if _schemas or _has_torchvision_ops():
        return bool(_schemas)
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False  # not installed: the import fails with its own clear error
    library = next(Path(spec.origin).parent.glob("_C*.so"), None)
    if library is None:
        return False
    try:
        torch.ops.load_library(str(library))  # what torchvision's import does first
        return False
    except OSError as exc:
        # torch wraps the loader's error ("Could not load this library: ...") around the
        # dynamic linker's, which names the missing library.
        if "cannot open shared object file" not in f"{exc} {exc.__cause__}":
            # e.g. an undefined symbol: a torchvision built for another torch version.
            # Its import fails then, and memeflow names the install that fixes it.
            return False
    schemas = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        schemas.define(op + _SCHEMA)
    _schemas.append(schemas)
    return True


def _has_torchvision_ops() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 (a lookup: raises when undefined)
    except (AttributeError, RuntimeError):
        return False
    return True
