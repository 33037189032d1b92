"""CLIP encoder: gives every document of /index and /search a unit-length embedding."""

from concurrent.futures import ThreadPoolExecutor

from docarray import DocList
from jina import Executor, requests

from memeflow import config
from memeflow.docs import MemeDoc
from memeflow.encoding import embed_documents
from memeflow.model import ClipModel


class ClipEncoder(Executor):
    """A thin shell around `ClipModel`: the model loads once, preprocessing runs in threads."""

    def __init__(
        self, model: str | None = None, batch_size: int = 16, preprocess_threads: int = 2, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.model = ClipModel(config.model_name(model), allow_random=config.allow_random_weights())
        self.batch_size = batch_size
        self.pool = ThreadPoolExecutor(preprocess_threads, thread_name_prefix="preprocess")
        self.logger.info(f"loaded {self.model.name} ({self.model.dim}-d)")

    @requests(on=["/index", "/search"])
    def encode(self, docs: DocList[MemeDoc], **kwargs) -> DocList[MemeDoc]:
        with self.monitor("encode_seconds", "Time to read, decode and embed a request"):
            embed_documents(self.model, docs, self.pool, self.batch_size)
        return docs

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()
