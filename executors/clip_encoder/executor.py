"""CLIP encoder: gives every document of /index and /search a unit-length embedding."""

import os
from concurrent.futures import ThreadPoolExecutor

from docarray import DocList
from jina import Executor, requests

from memeflow import config
from memeflow.docs import MemeDoc
from memeflow.encoding import embed_documents
from memeflow.model import DEFAULT_TEXT_CACHE_SIZE, ClipModel

# The defaults below were chosen by measurement on 2 cores (BENCHMARKS.md, "Encoding").
DEFAULT_BATCH_SIZE = 16
DEFAULT_PREPROCESS_THREADS = 2


def _runtime(configured: str) -> str:
    """MEMEFLOW_RUNTIME overrides the `runtime` parameter, as MEMEFLOW_MODEL does `model`."""
    return os.environ.get("MEMEFLOW_RUNTIME") or configured


class ClipEncoder(Executor):
    """A thin shell around `ClipModel`: the model loads once, preprocessing runs in threads."""

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        preprocess_threads: int = DEFAULT_PREPROCESS_THREADS,
        runtime: str = "torch",
        torch_threads: int | None = None,
        interop_threads: int | None = 1,
        text_cache_size: int = DEFAULT_TEXT_CACHE_SIZE,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model = ClipModel(
            config.model_name(model),
            allow_random=config.allow_random_weights(),
            runtime=_runtime(runtime),
            torch_threads=torch_threads,
            interop_threads=interop_threads,
            text_cache_size=text_cache_size,
        )
        self.batch_size = batch_size
        self.pool = ThreadPoolExecutor(preprocess_threads, thread_name_prefix="preprocess")
        self.logger.info(f"loaded {self.model.name} ({self.model.dim}-d, {self.model.runtime})")

    @requests(on=["/index", "/search"])
    def encode(self, docs: DocList[MemeDoc], **kwargs) -> DocList[MemeDoc]:
        with self.monitor("encode_seconds", "Time to read, decode and embed a request"):
            embed_documents(self.model, docs, self.pool, self.batch_size)
        return docs

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()
