"""One request to the gateway and its answer, over gRPC or HTTP, with what the service
refused or failed on raised as one-line errors (`memeflow.client.errors`).

gRPC speaks Jina's protocol with memeflow's own message code (`memeflow.client.wire`): the
unary `jina.JinaSingleDataRequestRPC/process_single_data` call, which the gateway answers
as it answers Jina's streaming `Call`. HTTP posts JSON with the standard library. Neither
imports Jina or DocArray.

Every memeflow endpoint may be sent twice (`/index` and `/upsert` store by id, `/delete`
and `/clear` end in the same state), so a gRPC call that finds the service UNAVAILABLE is
sent once more on a new channel: after a restart of the service a kept client answers at
once instead of waiting out the old channel's reconnect backoff.
"""

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from memeflow.client.errors import from_http, from_rpc, from_status
from memeflow.client.wire.codec import WireDoc, parse_reply, reply_docs, request_bytes

# gRPC's C core logs a closed connection ("Got goaway") at INFO on stderr, which a kept
# client meets at every restart of the service; its errors still show.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

CALL = "/jina.JinaSingleDataRequestRPC/process_single_data"
DRY_RUN = "/jina.JinaGatewayDryRunRPC/dry_run"  # answers a StatusProto: the Flow is up
# No size limit either way (the service has its own per-request document limit), and a
# short reconnect backoff: gRPC's default grows to two minutes.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class Transport(Protocol):
    address: str  # how messages name the service: "grpc://host:port"

    def call(self, endpoint: str, docs: Sequence[Mapping[str, Any]],
             parameters: Mapping[str, Any], timeout: float) -> list[WireDoc]:
        """The reply's documents; ConnectionError when unreachable, TimeoutError past
        `timeout` seconds, ServiceError (or RequestRefused) for an error answer."""
        ...

    def is_ready(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


def timeout_error(endpoint: str, address: str, timeout: float) -> TimeoutError:
    return TimeoutError(
        f"{endpoint}: no answer from {address.split('://')[-1]} within {timeout:g} s; "
        "check the service's log, or raise MEMEFLOW_TIMEOUT for slow requests")


class GrpcTransport:
    """Unary calls on one channel, made anew when the service was unreachable."""

    def __init__(self, host: str, port: int, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self.address = f"grpc://{host}:{port}"
        self._target = f"{host}:{port}"
        self._metadata = tuple(metadata)
        self._channel: Any = None

    def _method(self, path: str, deserialize: Any) -> Any:
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self._target, options=CHANNEL_OPTIONS)
        return self._channel.unary_unary(path, request_serializer=None,
                                         response_deserializer=deserialize)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def call(self, endpoint: str, docs: Sequence[Mapping[str, Any]],
             parameters: Mapping[str, Any], timeout: float) -> list[WireDoc]:
        import grpc

        request = request_bytes(endpoint, docs, parameters)
        for attempt in (1, 2):
            try:
                reply = self._method(CALL, parse_reply)(request, timeout=timeout,
                                                        metadata=self._metadata)
                break
            except grpc.RpcError as error:
                code, details = error.code(), error.details() or ""
                if code == grpc.StatusCode.UNAVAILABLE:
                    self.close()  # a new channel connects at once, with no backoff
                    if attempt == 1:
                        continue
                    first = details.splitlines()[0] if details else "no answer"
                    raise ConnectionError(f"cannot reach {self.address}: {first}") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise timeout_error(endpoint, self.address, timeout) from None
                raise from_rpc(code.name, details, endpoint, self.address) from None
        if reply.header.status.code != 0:  # StatusProto.ERROR
            raise from_status(reply.header.status, endpoint)
        return reply_docs(reply)

    def is_ready(self, timeout: float) -> bool:
        import grpc

        from memeflow.client.wire.memeflow_wire_pb2 import StatusProto

        try:
            status = self._method(DRY_RUN, StatusProto.FromString)(
                b"", timeout=timeout, metadata=self._metadata)
        except grpc.RpcError:
            self.close()
            return False
        return bool(status.code == 0)


def _json_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document as JSON: arrays as lists, documents in lists as dicts. Bytes (a preview)
    are left out: JSON has none, and images go over HTTP as `data:` URIs."""
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if value is None or isinstance(value, bytes):
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif name in ("matches", "terms"):
            value = [_json_doc(item) for item in value]
        out[name] = value
    return out


def _from_json(doc: dict[str, Any]) -> WireDoc:
    if isinstance(doc.get("embedding"), list):
        doc["embedding"] = np.asarray(doc["embedding"], dtype=np.float32)
    for name in ("matches", "terms"):
        if isinstance(doc.get(name), list):
            doc[name] = [_from_json(item) for item in doc[name]]
    return doc


def _failed_documents(code: int, answer: Any) -> list[WireDoc] | None:
    """A request of one document that failed is answered 400 carrying that document
    (`memeflow.gateway.answers`): handed back as gRPC answers it, with its `error`."""
    data = answer.get("data") if code == 400 and isinstance(answer, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        return None
    return [_from_json(doc) for doc in data]


class HttpTransport:
    """JSON posts to the gateway's HTTP server, one connection per call (the standard
    library's urllib)."""

    def __init__(self, host: str, port: int, headers: Mapping[str, str] | None = None) -> None:
        self.address = f"http://{host}:{port}"
        self._headers = dict(headers or {})

    def close(self) -> None:
        pass

    def _open(self, path: str, body: bytes | None, timeout: float) -> Any:
        request = urllib.request.Request(
            self.address + path, data=body, method="POST" if body is not None else "GET",
            headers={"Content-Type": "application/json", **self._headers})
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read() or b"null")

    def call(self, endpoint: str, docs: Sequence[Mapping[str, Any]],
             parameters: Mapping[str, Any], timeout: float) -> list[WireDoc]:
        body = json.dumps({"data": [_json_doc(d) for d in docs],
                           "parameters": dict(parameters)}).encode()
        try:
            content = self._open(endpoint, body, timeout)
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = {"detail": raw.decode(errors="replace") or f"HTTP {error.code}"}
            if (failed := _failed_documents(error.code, answer)) is not None:
                return failed
            raise from_http(answer, endpoint) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise timeout_error(endpoint, self.address, timeout) from None
            raise ConnectionError(f"cannot reach {self.address}: {error.reason}") from None
        except TimeoutError:
            raise timeout_error(endpoint, self.address, timeout) from None
        except ConnectionError as error:  # reset or refused once connected
            raise ConnectionError(f"cannot reach {self.address}: {error}") from None
        return [_from_json(doc) for doc in (content or {}).get("data") or []]

    def is_ready(self, timeout: float) -> bool:
        try:
            status = self._open("/dry_run", None, timeout)
        except (OSError, ValueError):
            return False
        return isinstance(status, dict) and status.get("code") == 0
