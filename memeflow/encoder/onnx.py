"""A dual encoder's two towers in ONNX Runtime: the same float32 maths, fewer and fused kernels.

On these AVX2 cores ONNX Runtime's GEMMs are much faster than torch's for the few-token
matrices of a text query, and its fused attention / GELU / layer-norm kernels save the
element-wise passes that cost torch about a fifth of an image batch. The graphs are
exported from the loaded torch model in memory at start-up (a few seconds), so there
is no file to keep in step with the checkpoint.
"""

import io
import warnings

import numpy as np
import torch

from memeflow.encoder.families import DualEncoder

# onnx >= 1.18 is generated for protobuf >= 6, which Jina 3.34's pins rule out.
INSTALL_HINT = "pip install 'onnxruntime==1.32.0' 'onnx==1.17.0'  (or: pip install -e '.[onnx]')"
OPSET = 17


def _export(
    tower: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic: dict[str, dict[int, str]]
) -> bytes:
    """The tower as ONNX bytes; the axes named in `dynamic` may change size between calls."""
    buffer = io.BytesIO()
    # nn.MultiheadAttention (OpenCLIP's towers) takes a fused fast path in inference that
    # the exporter cannot write; the plain path is the same maths in ONNX's operators.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The tracer notes shape-dependent branches (mask length == token count, always
            # true here) and the deprecated TorchScript exporter; neither concerns users.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                tower.eval(),
                args,
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter (dynamo=False) takes files
                input_names=list(dynamic),
                output_names=["features"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return buffer.getvalue()


class OnnxClip:
    """Both towers as ONNX Runtime sessions; numpy in, unnormalised features out."""

    def __init__(self, encoder: DualEncoder, threads: int | None) -> None:
        import onnxruntime as ort  # optional dependency: imported only when chosen

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Spinning threads would take the cores the gateway and indexer need between
        # requests; a wake-up costs microseconds against milliseconds of work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        height, width = encoder.image_size
        pixels = torch.zeros(2, 3, height, width)
        text_args = tuple(encoder.tokenize(["a photo", "a photo of a cat"]).values())
        providers = ["CPUExecutionProvider"]
        image = _export(encoder.image_tower(), (pixels,), {"pixel_values": {0: "batch"}})
        text_axes = {0: "batch", 1: "tokens"}
        self.text_inputs = encoder.text_inputs
        text = _export(encoder.text_tower(), text_args,
                       {name: text_axes for name in self.text_inputs})
        self.image = ort.InferenceSession(image, options, providers=providers)
        self.text = ort.InferenceSession(text, options, providers=providers)

    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        return self.image.run(None, {"pixel_values": pixel_values.astype(np.float32)})[0]

    def text_features(self, *tokens: np.ndarray) -> np.ndarray:
        """The arrays of the encoder's `text_inputs`, in that order."""
        feed = dict(zip(self.text_inputs, tokens, strict=True))
        return self.text.run(None, {k: v.astype(np.int64) for k, v in feed.items()})[0]
