"""CLIP's two towers in ONNX Runtime: the same float32 maths, fewer and fused kernels.

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
from transformers import CLIPModel, CLIPVisionConfig, PreTrainedTokenizerBase

# onnx >= 1.18 is generated for protobuf >= 6, which Jina 3.34's pins rule out.
INSTALL_HINT = "pip install 'onnxruntime==1.32.0' 'onnx==1.17.0'  (or: pip install -e '.[onnx]')"
OPSET = 17


class _ImageTower(torch.nn.Module):
    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output


class _TextTower(torch.nn.Module):
    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return out.pooler_output


def _export(
    tower: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic: dict[str, dict[int, str]]
) -> bytes:
    """The tower as ONNX bytes; the axes named in `dynamic` may change size between calls."""
    buffer = io.BytesIO()
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
    return buffer.getvalue()


class OnnxClip:
    """Both towers as ONNX Runtime sessions; numpy in, unnormalised features out."""

    def __init__(self, model: CLIPModel, tokenizer: PreTrainedTokenizerBase, threads: int | None
                 ) -> None:
        import onnxruntime as ort  # optional dependency: imported only when chosen

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Spinning threads would take the cores the gateway and indexer need between
        # requests; a wake-up costs microseconds against milliseconds of work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        vision = model.config.vision_config  # transformers makes a dict into the config class
        assert isinstance(vision, CLIPVisionConfig) and isinstance(vision.image_size, int)
        size = vision.image_size
        pixels = torch.zeros(2, 3, size, size)
        tokens = tokenizer(["a photo", "a photo of a cat"], padding="longest", return_tensors="pt")
        text_args = (tokens["input_ids"], tokens["attention_mask"])
        providers = ["CPUExecutionProvider"]
        image = _export(_ImageTower(model), (pixels,), {"pixel_values": {0: "batch"}})
        text_axes = {0: "batch", 1: "tokens"}
        text = _export(
            _TextTower(model), text_args, {"input_ids": text_axes, "attention_mask": text_axes}
        )
        self.image = ort.InferenceSession(image, options, providers=providers)
        self.text = ort.InferenceSession(text, options, providers=providers)

    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        return self.image.run(None, {"pixel_values": pixel_values.astype(np.float32)})[0]

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.text.run(None, {k: v.astype(np.int64) for k, v in feed.items()})[0]
