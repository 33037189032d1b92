"""How the client splits a call into requests: in the order sent, within the service's
limits, a lost answer as a clear error instead of a hang, and an error answer as one line.
The transport is tested against real gRPC and HTTP servers on loopback that answer as the
gateway does, with messages made by Jina's and DocArray's own code."""

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
import numpy as np
import pytest

from memeflow.client import MemeClient, RequestRefused, ServiceError
from memeflow.client.transport import CALL
from memeflow.client.wire import codec
from tests.conftest import local_http_server


class TransportStub:
    """Answers each request with its own documents, marked with the request's number."""

    address = "grpc://127.0.0.1:1"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.inputs: list[dict[str, Any]] = []

    def call(self, endpoint: str, docs: Sequence[Mapping[str, Any]],
             parameters: Mapping[str, Any], timeout: float) -> list[dict[str, Any]]:
        self.requests.append({"size": len(docs), "timeout": timeout, **parameters})
        self.inputs.extend(docs)
        return [{**doc, "tags": {"request": len(self.requests)}} for doc in docs]

    def is_ready(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


def client_with(stub: TransportStub, protocol: str = "grpc") -> MemeClient:
    client = MemeClient(f"{protocol}://127.0.0.1:1")
    client._transport = stub
    return client


def test_a_long_call_goes_as_requests_one_after_another_in_order() -> None:
    from memeflow.documents import MemeDoc

    stub = TransportStub()
    docs = [MemeDoc(id=str(i)) for i in range(250)]
    replies = client_with(stub)._post("/index", docs)
    assert [doc.id for doc in replies] == [str(i) for i in range(250)]
    assert [doc.tags["request"] for doc in replies][::100] == [1, 2, 3]
    assert [r["size"] for r in stub.requests] == [100, 100, 50]


def test_requests_stay_within_the_limits_of_each_protocol() -> None:
    from memeflow.documents import MemeDoc

    stub = TransportStub()
    client_with(stub).upsert([MemeDoc(id=str(i)) for i in range(2500)])
    assert [r["size"] for r in stub.requests] == [1000, 1000, 500]  # MEMEFLOW_MAX_DOCS
    stub = TransportStub()
    client_with(stub, "http").upsert([{"id": str(i)} for i in range(250)])
    assert [r["size"] for r in stub.requests] == [100, 100, 50]  # the HTTP gateway's limit


def test_an_image_term_as_a_file_url_is_read_by_the_client_like_a_path(tmp_path) -> None:
    image = tmp_path / "drake 1.png"
    image.write_bytes(b"png bytes")
    stub = TransportStub()
    client_with(stub).search_query(f"{image.as_uri()} - cat")
    (query,) = stub.inputs
    assert query["terms"][0]["blob"] == b"png bytes" and query["terms"][0]["weight"] == 1.0
    assert query["terms"][1] == {"text": "cat", "weight": -1.0}


# --- the wire: what DocArray and Jina read and write ----------------------------------------

def test_documents_read_and_written_as_docarray_codes_them() -> None:
    from docarray import DocList

    from memeflow.documents import MatchDoc, MemeDoc, TermDoc

    sent = {"id": "a", "uri": "/m/a b.jpg", "blob": b"\x00\xff", "text": "é",
            "tags": {"n": 7, "big": 2**40, "f": 0.5, "yes": True, "none": None,
                     "list": [1, "x", {"k": "v"}], "nested": {"deep": [2.5]}},
            "embedding": np.arange(4, dtype=np.float32), "words": "",
            "terms": [{"text": "cat", "weight": -2.0}]}
    proto = DocList[MemeDoc].from_protobuf(
        type(DocList[MemeDoc]().to_protobuf()).FromString(
            codec.encode_list([sent]).SerializeToString()))
    (doc,) = proto
    assert (doc.id, doc.uri, doc.blob, doc.text, doc.words) == ("a", "/m/a b.jpg", b"\x00\xff",
                                                                "é", "")
    assert doc.tags == {**sent["tags"], "big": float(2**40)}
    assert np.array_equal(doc.embedding, sent["embedding"]) and doc.embedding.dtype == np.float32
    assert (doc.terms[0].text, doc.terms[0].weight) == ("cat", -2.0)
    # What the Flow answers, read back: matches with scores, signals, tags.
    reply = MemeDoc(id="q", matches=DocList[MatchDoc]([MatchDoc(id="m", score=0.25, uri="/u",
                                                                signals={"clip": 1},
                                                                tags={"phash": "ab"})]),
                    terms=DocList[TermDoc]())
    (back,) = [codec.decode_doc(p) for p in
               codec.DocListProto.FromString(DocList[MemeDoc]([reply]).to_protobuf()
                                             .SerializeToString()).docs]
    assert back["id"] == "q" and back["error"] is None and back["terms"] == []
    assert {k: back["matches"][0][k] for k in ("id", "score", "uri", "signals", "tags")} == {
        "id": "m", "score": 0.25, "uri": "/u", "signals": {"clip": 1}, "tags": {"phash": "ab"}}


def jina_reply(endpoint: str, docs: list[Any] | None = None,
               error: tuple[str, list[str]] | None = None) -> bytes:
    """A reply as the gateway sends it, made with Jina's own message classes."""
    from docarray import DocList
    from jina.proto.docarray_v2.pb import jina_pb2

    from memeflow.documents import MemeDoc

    reply = jina_pb2.DataRequestProto()
    reply.header.exec_endpoint = endpoint
    if error is not None:
        name, args = error
        reply.header.status.code = jina_pb2.StatusProto.ERROR
        reply.header.status.description = f"{name}({args[-1]!r})"
        reply.header.status.exception.name = name
        reply.header.status.exception.args.extend(args)
        reply.header.status.exception.stacks.extend(
            ["Traceback (most recent call last):\n",
             f'  File "executor.py", line 1\n{name}: {args[-1]}\n'])
    reply.data.docs_bytes = DocList[MemeDoc](docs or []).to_protobuf().SerializeToString()
    return reply.SerializeToString()


@contextlib.contextmanager
def grpc_gateway(answer: Callable[[bytes, grpc.ServicerContext], bytes]) -> Iterator[int]:
    """A gRPC server on a free loopback port answering the gateway's unary call."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(answer)
    service, method = CALL.strip("/").split("/")
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service,
                                                                          {method: handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


def test_the_gateway_reads_the_request_and_its_answer_is_read() -> None:
    from docarray import DocList
    from jina.proto.docarray_v2.pb import jina_pb2

    from memeflow.documents import MemeDoc

    seen: list[Any] = []

    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        parsed = jina_pb2.DataRequestProto.FromString(request)
        docs = DocList[MemeDoc].from_protobuf(parsed.data.docs)
        seen.append((parsed.header.exec_endpoint, dict(parsed.parameters), docs,
                     dict(context.invocation_metadata())))
        return jina_reply("/count", [MemeDoc(tags={"count": 3})])

    with grpc_gateway(answer) as port:
        client = MemeClient(f"grpc://127.0.0.1:{port}")
        assert client.count() == 3
        client.search_text("a cat", top_k=2, dedup=True)
    assert seen[0][0] == "/count" and len(seen[0][2]) == 0
    endpoint, parameters, docs, _ = seen[1]
    assert (endpoint, parameters, docs[0].text) == ("/search", {"top_k": 2.0, "dedup": True},
                                                   "a cat")


def test_a_lost_answer_is_a_timeout_that_says_what_to_do(monkeypatch) -> None:
    monkeypatch.setenv("MEMEFLOW_TIMEOUT", "0.5")

    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(2)
        return jina_reply("/count")

    with grpc_gateway(answer) as port, pytest.raises(
            TimeoutError, match=r"/count: no answer .* within 0.5 s.*MEMEFLOW_TIMEOUT"):
        MemeClient(f"grpc://127.0.0.1:{port}").count()


def test_an_error_answer_is_one_exception_with_one_line() -> None:
    """An error in the reply's header (the executor's exception and the service's frames),
    a gRPC status, and an HTTP error reply become RequestRefused for the caller's mistake and
    ServiceError for the service's, each one line."""
    refusal = "top_k must be a whole number >= 1, got 0.0"
    grpc_cases = [
        (("RequestError", [refusal]), RequestRefused, f"the service refused /search: {refusal}"),
        (("RuntimeError", ["disk on fire"]), ServiceError,
         "the service failed on /search (RuntimeError: disk on fire); its log has the traceback"),
        # An OSError's errno comes first; the words are what people need.
        (("StoreWriteError", ["27", "cannot write: free disk space"]), ServiceError,
         "the service failed on /search (StoreWriteError: cannot write: free disk space); its"),
    ]
    for error, kind, message in grpc_cases:
        with grpc_gateway(lambda request, context, e=error: jina_reply("/search", error=e)
                          ) as port, pytest.raises(kind) as caught:
            MemeClient(f"grpc://127.0.0.1:{port}").search_text("a cat")
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
        assert (kind is RequestRefused) == isinstance(caught.value, RequestRefused)
        assert 'File "executor.py"' in caught.value.details  # for --verbose

    def unauthenticated(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key: send it")
        raise AssertionError

    with grpc_gateway(unauthenticated) as port, pytest.raises(RequestRefused) as caught:
        MemeClient(f"grpc://127.0.0.1:{port}").search_text("a cat")
    assert str(caught.value) == (f"grpc://127.0.0.1:{port} refused /search: UNAUTHENTICATED "
                                 "missing or wrong API key: send it")

    http_cases = [
        (400, {"detail": refusal, "header": {"status": {"code": 1, "description": refusal,
               "exception": {"name": "RequestError", "args": [refusal]}}}}, RequestRefused,
         f"the service refused /search: {refusal}"),
        (413, {"detail": "request holds 200 documents; send at most 100"}, RequestRefused,
         "the service refused /search: request holds 200 documents; send at"),
        (500, {"detail": "RuntimeError('disk on fire')"}, ServiceError,
         "the service failed on /search (RuntimeError: disk on fire); its log has the traceback"),
        (500, {"detail": "StoreWriteError(27, 'cannot write: free disk space')"}, ServiceError,
         "the service failed on /search (StoreWriteError: cannot write: free disk space)"),
    ]
    for status, content, kind, message in http_cases:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self, status: int = status, content: Any = content) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps(content).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        with local_http_server(Handler) as port, pytest.raises(kind) as caught:
            MemeClient(f"http://127.0.0.1:{port}").search_text("a cat")
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
        assert (kind is RequestRefused) == isinstance(caught.value, RequestRefused)


def test_no_service_is_a_connection_error_of_one_line() -> None:
    from tests.conftest import free_port

    for protocol in ("grpc", "http"):
        port = free_port()
        with pytest.raises(ConnectionError) as caught:
            MemeClient(f"{protocol}://127.0.0.1:{port}").count()
        assert str(caught.value).startswith(f"cannot reach {protocol}://127.0.0.1:{port}: ")
        assert "\n" not in str(caught.value) and "None" not in str(caught.value)


BLOCKER = '''
import importlib.abc
import sys


class _NotHere(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jina", "docarray", "torch", "transformers", "pydantic"):
            raise ImportError(f"{name} is not installed here")
        return None


sys.meta_path.insert(0, _NotHere())
'''


def test_the_command_line_needs_neither_jina_nor_docarray(tmp_path) -> None:
    """What makes a command start in a fraction of a second: `count` and `search` run
    where Jina, DocArray, pydantic and the model libraries cannot be imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from memeflow.documents import MatchDoc, MemeDoc

    (tmp_path / "sitecustomize.py").write_text(BLOCKER)

    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        from docarray import DocList

        return jina_reply("/any", [MemeDoc(tags={"count": 5}, matches=DocList[MatchDoc](
            [MatchDoc(id="m", uri="/memes/a b.jpg", score=0.5, signals={"clip": 1})]))])

    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    memeflow = str(Path(sys.executable).parent / "memeflow")
    blocked = subprocess.run([sys.executable, "-c", "import docarray"], env=env,
                             capture_output=True, text=True, check=False)
    assert "docarray is not installed here" in blocked.stderr  # the blocker works
    with grpc_gateway(answer) as port:
        host = ["--host", f"grpc://127.0.0.1:{port}"]
        count = subprocess.run([memeflow, *host, "count"], env=env, capture_output=True,
                               text=True, timeout=60, check=False)
        assert (count.returncode, count.stdout, count.stderr) == (0, "5\n", "")
        search = subprocess.run([memeflow, *host, "search", "a cat"], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert search.returncode == 0, search.stderr
        assert search.stdout.split() == ["1", "0.5000", "'/memes/a", "b.jpg'"]
