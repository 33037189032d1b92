"""How the client splits a call into requests: in the order sent, within the service's
limits, and a lost answer as a clear error instead of a hang."""

from typing import Any

import pytest
from docarray import DocList

from memeflow.client import MemeClient
from memeflow.documents import MemeDoc


class JinaClientStub:
    """Answers each request with its own documents, marked with the request's number."""

    def __init__(self, lose_answer: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.inputs: list[MemeDoc] = []
        self.lose_answer = lose_answer

    def post(self, endpoint: str, inputs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        self.requests.append({"size": len(inputs), **kwargs})
        self.inputs.extend(inputs)
        if self.lose_answer:
            raise ConnectionError("gRPC error: StatusCode.DEADLINE_EXCEEDED Deadline Exceeded")
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
