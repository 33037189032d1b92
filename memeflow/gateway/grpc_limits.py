"""Malformed gRPC requests are the caller's error: a refusal and one log line, not a fault.

Jina's gateway passes a request's bytes on unparsed; a string that is not UTF-8 (what a
lone surrogate becomes on the wire) or nesting deeper than protobuf's 100 levels fails
later, in the gateway or an executor, as an `Unexpected DecodeError` with tracebacks in
the log. A request nested deeper than `MAX_PROTO_DEPTH` parses, but the same document
coming back as a search match, or its parameters under Jina's `__results__`, would not:
one stored document with deep tags broke every later search. So the gateway parses each
request as it arrives, and a request that does not parse or nests too deep is answered
with Jina's refusal status (`RequestError`, which `MemeClient` raises as
`RequestRefused`), or INVALID_ARGUMENT where the method's answer cannot carry one.
"""

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from jina.proto import jina_pb2
from jina.proto.serializer import DataRequestProto
from jina.types.request.data import DataRequest

from memeflow.params import REFUSAL_NAME

logger = logging.getLogger(__name__)

# Protobuf messages inside one another; well under the 100 at which the parser gives up,
# with room for the levels a document gains as a match or parameters as results. The
# HTTP body's limit (memeflow.gateway.http_limits.MAX_JSON_DEPTH) stays under it too.
MAX_PROTO_DEPTH = 64


class Malformed:
    """What the request deserializer returns for bytes it refuses."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _bounded_depth(descriptor: Any) -> int | None:
    """The most levels a message of this type can span (1: no message fields), or None when
    it can hold itself (Struct, DocArray's nodes) and so nest without bound. Cached."""
    name = descriptor.full_name
    if name not in _BOUNDED:
        _BOUNDED[name] = _span(descriptor, frozenset())
    return _BOUNDED[name]


def _span(descriptor: Any, visiting: frozenset[str]) -> int | None:
    if descriptor.full_name in visiting:
        return None
    deepest = 1
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            inner = _span(field.message_type, visiting | {descriptor.full_name})
            if inner is None:
                return None
            deepest = max(deepest, 1 + inner)
    return deepest


_BOUNDED: dict[str, int | None] = {}


def proto_depth_over(message: Message, limit: int) -> int | None:
    """The depth of the first message nested deeper than `limit` (the outermost is 1; a
    map entry counts as a level, as on the wire), else None. Iterative: no recursion; a
    part whose type cannot nest (an array's message) is counted without being walked."""
    stack: list[tuple[Message, int]] = [(message, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return depth
        for field, value in current.ListFields():
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            bounded = _bounded_depth(field.message_type)
            if bounded is not None:
                if depth + bounded > limit:
                    return depth + bounded
                continue
            if field.message_type.GetOptions().map_entry:
                stack.extend((item, depth + 2) for item in value.values())
            elif field.label == FieldDescriptor.LABEL_REPEATED:
                stack.extend((item, depth + 1) for item in value)
            else:
                stack.append((value, depth + 1))
    return None


def check_request(data: bytes) -> str | None:
    """Why a DataRequest's bytes are refused, or None when they are fine."""
    try:
        parsed = jina_pb2.DataRequestProto.FromString(data)
    except DecodeError:
        return ("the request is not valid protobuf: a string that is not UTF-8 (such as a "
                "lone surrogate), or nesting deeper than 100 levels")
    depth = proto_depth_over(parsed, MAX_PROTO_DEPTH)
    if depth is not None:
        return (f"the request nests messages over {MAX_PROTO_DEPTH} levels deep: flatten "
                "its tags or parameters")
    return None


def _checked_deserializer(data: bytes) -> DataRequest | Malformed:
    reason = check_request(data)
    return Malformed(reason) if reason else DataRequestProto.FromString(data)


def refusal(reason: str) -> DataRequest:
    """An answer with Jina's error status, named as a refusal (memeflow.refusals)."""
    answer = DataRequest()
    status = answer.header.status
    status.code = jina_pb2.StatusProto.ERROR
    status.description = reason
    status.exception.name = REFUSAL_NAME
    status.exception.args.append(reason)
    return answer


def _log(method: str, reason: str) -> None:
    logger.warning("refused %s: %s", method, reason)


def _checking(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with the request check in front of its behaviour."""
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        behaviour: Any = handler.stream_stream

        async def stream(requests: AsyncIterable[Any], context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[Any]:
            refused: list[str] = []

            async def until_malformed() -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Malformed):
                        refused.append(request.reason)
                        return  # the requests before it are answered; the call then ends
                    yield request

            async for answer in behaviour(until_malformed(), context):
                yield answer
            if refused:
                _log(method, refused[0])
                yield refusal(refused[0])

        return grpc.stream_stream_rpc_method_handler(
            stream, request_deserializer=_checked_deserializer, response_serializer=serializer)
    if not handler.request_streaming and not handler.response_streaming:
        unary: Any = handler.unary_unary

        async def single(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Malformed):
                _log(method, request.reason)
                return refusal(request.reason)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            single, request_deserializer=_checked_deserializer, response_serializer=serializer)
    return handler  # no such method takes a DataRequest at the gateway


class GrpcRequestCheck(grpc.aio.ServerInterceptor):
    """Parses every DataRequest as it arrives (see the module docstring)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is not DataRequestProto.FromString:
            return handler
        return _checking(handler, handler_call_details.method)
