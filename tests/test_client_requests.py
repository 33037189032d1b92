"""How the client splits a call into requests: in the order sent, within the service's
limits, a lost answer as a clear error instead of a hang, and an error answer as one line."""

from typing import Any

import pytest
from docarray import DocList

from memeflow.client import MemeClient, RequestRefused, ServiceError
from memeflow.documents import MemeDoc


class JinaClientStub:
    """Answers each request with its own documents, marked with the request's number."""

    def __init__(self, lose_answer: bool = False, error: Exception | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.inputs: list[MemeDoc] = []
        self.lose_answer = lose_answer
        self.error = error

    def post(self, endpoint: str, inputs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        self.requests.append({"size": len(inputs), **kwargs})
        self.inputs.extend(inputs)
        if self.lose_answer:
            raise ConnectionError("gRPC error: StatusCode.DEADLINE_EXCEEDED Deadline Exceeded")
        if self.error is not None:
            raise self.error
        for doc in inputs:
            doc.tags = {"request": len(self.requests)}
        return inputs


def client_with(stub: JinaClientStub, protocol: str = "grpc") -> MemeClient:
    client = MemeClient(f"{protocol}://127.0.0.1:1")
    client._client = stub  # type: ignore[assignment]
    return client


def test_a_long_call_goes_as_requests_one_after_another_in_order() -> None:
    stub = JinaClientStub()
    docs = [MemeDoc(id=str(i)) for i in range(250)]
    replies = client_with(stub)._post("/index", docs)
    assert [doc.id for doc in replies] == [str(i) for i in range(250)]
    assert [r["size"] for r in stub.requests] == [100, 100, 50]
    assert all(r["request_size"] == r["size"] and "results_in_order" not in r
               for r in stub.requests)  # one Jina request per post: nothing to reorder


def test_requests_stay_within_the_limits_of_each_protocol(monkeypatch) -> None:
    stub = JinaClientStub()
    client_with(stub).upsert([MemeDoc(id=str(i)) for i in range(2500)])
    assert [r["size"] for r in stub.requests] == [1000, 1000, 500]  # MEMEFLOW_MAX_DOCS
    stub = JinaClientStub()
    client_with(stub, "http").upsert([MemeDoc(id=str(i)) for i in range(250)])
    assert [r["size"] for r in stub.requests] == [100, 100, 50]  # the HTTP gateway's limit


def test_a_lost_answer_is_a_timeout_that_says_what_to_do(monkeypatch) -> None:
    monkeypatch.setenv("MEMEFLOW_TIMEOUT", "7")
    stub = JinaClientStub(lose_answer=True)
    with pytest.raises(TimeoutError, match=r"/count: no answer .* within 7 s.*MEMEFLOW_TIMEOUT"):
        client_with(stub).count()
    assert stub.requests[0]["timeout"] == 7.0


def test_an_image_term_as_a_file_url_is_read_by_the_client_like_a_path(tmp_path) -> None:
    image = tmp_path / "drake 1.png"
    image.write_bytes(b"png bytes")
    stub = JinaClientStub()
    client_with(stub).search_query(f"{image.as_uri()} - cat")
    (query,) = stub.inputs
    assert query.terms[0].blob == b"png bytes" and query.terms[0].weight == 1.0
    assert query.terms[1].text == "cat" and query.terms[1].weight == -1.0
def jina_error_header(name: str, message: str) -> Any:
    """The header Jina's gRPC client puts in BadServer: name, message, the service's frames."""
    from jina.proto import jina_pb2

    header = jina_pb2.HeaderProto()
    header.status.code = jina_pb2.StatusProto.ERROR
    header.status.description = f"{name}({message!r})"
    header.status.exception.name = name
    header.status.exception.args.append(message)
    header.status.exception.stacks.extend(["Traceback (most recent call last):\n",
                                          f'  File "executor.py", line 1\n{name}: {message}\n'])
    return header


def test_an_error_answer_is_one_exception_with_one_line() -> None:
    """What Jina's clients raise (BadServer holding the whole header and the service's
    stack frames; ValueError of the HTTP reply's JSON; gRPC statuses) becomes RequestRefused
    for the caller's mistake and ServiceError for the service's, each one line."""
    from jina.excepts import BadServer, BadServerFlow

    refusal = "top_k must be a whole number >= 1, got 0.0"
    http_400 = {"detail": refusal, "header": {"status": {"code": 1, "description": refusal,
                "exception": {"name": "RequestError", "args": [refusal]}}}}
    unauthenticated = BadServerFlow(
        "gRPC error: StatusCode.UNAUTHENTICATED missing or wrong API key: send it\nNone")
    cases = [
        ("grpc", BadServer(jina_error_header("RequestError", refusal)), RequestRefused,
         f"the service refused /search: {refusal}"),
        ("http", ValueError(http_400), RequestRefused, f"the service refused /search: {refusal}"),
        ("http", ValueError({"detail": "request holds 200 documents; send at most 100"}),
         RequestRefused, "the service refused /search: request holds 200 documents; send at"),
        ("grpc", unauthenticated, RequestRefused,
         "grpc://127.0.0.1:1 refused /search: UNAUTHENTICATED missing or wrong API key"),
        ("grpc", BadServer(jina_error_header("RuntimeError", "disk on fire")), ServiceError,
         "the service failed on /search (RuntimeError: disk on fire); its log has the traceback"),
        ("http", ValueError({"detail": "RuntimeError('disk on fire')"}), ServiceError,
         "the service failed on /search (RuntimeError: disk on fire); its log has the traceback"),
    ]
    for protocol, raised, kind, message in cases:
        with pytest.raises(kind) as caught:
            client_with(JinaClientStub(error=raised), protocol).search_text("a cat")
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
        assert (kind is RequestRefused) == isinstance(caught.value, RequestRefused)
        assert caught.value.__cause__ is raised  # --verbose shows it
    with pytest.raises(ServiceError) as caught:
        client_with(JinaClientStub(error=BadServer(jina_error_header("OSError", "full")))).count()
    assert 'File "executor.py"' in caught.value.details
    # An OSError's errno comes first; the words are what people need (the crash suite's
    # full disk: "cannot write to ...: nothing from this request was stored; ...").
    header = jina_error_header("StoreWriteError", "cannot write: free disk space")
    header.status.exception.args.insert(0, "27")
    disk_full = [("grpc", BadServer(header)), ("http", ValueError(
        {"detail": "StoreWriteError(27, 'cannot write: free disk space')"}))]
    for protocol, raised in disk_full:
        with pytest.raises(ServiceError, match=r"\(StoreWriteError: cannot write: free disk "
                           r"space\); its log"):
            client_with(JinaClientStub(error=raised), protocol).count()


def test_errors_that_are_not_answers_stay_what_they_are() -> None:
    with pytest.raises(ConnectionError, match="UNAVAILABLE"):
        client_with(JinaClientStub(error=ConnectionError("gRPC error: StatusCode.UNAVAILABLE"))
                    ).count()
    with pytest.raises(KeyError):
        client_with(JinaClientStub(error=KeyError("a bug"))).count()
