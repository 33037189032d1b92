"""Documents as plain dicts <-> DocArray v2's protobuf form, and Jina's request around them.

A document is a dict of a `MemeDoc`'s fields (`id`, `uri`, `blob`, `text`, `tags`,
`embedding`, `words`, `error`, `matches`, `thumbnail`, `terms`; a match's `score`,
`signals`, `words_score`; a term's `weight`). A field left out or None is not sent, and the
service fills in its default. Values are coded as DocArray codes them
(`docarray.base_doc.mixins.io`): str, bool, int (32-bit), float, bytes, dict, list and
numpy arrays (`embedding`); lists of documents (`matches`, `terms`) as document lists.
"""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf.struct_pb2 import Struct

from memeflow.client.wire.memeflow_wire_pb2 import (
    DataRequestProto,
    DocListProto,
    DocProto,
    NodeProto,
)

WireDoc = dict[str, Any]
DOC_LISTS = frozenset({"matches", "terms"})  # fields that hold documents
INT32 = range(-(2**31), 2**31)


def _set_value(node: NodeProto, value: Any) -> None:
    """Fill `node` with `value` (None leaves it empty, which reads back as None)."""
    if value is None:
        return
    if isinstance(value, bool):  # before int: a bool is an int in Python
        node.boolean = value
    elif isinstance(value, int | np.integer) and int(value) in INT32:
        node.integer = int(value)
    elif isinstance(value, int | float | np.integer | np.floating):
        node.float = float(value)
    elif isinstance(value, str):
        node.text = value
    elif isinstance(value, bytes):
        node.blob = value
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        node.ndarray.dense.buffer = array.tobytes()
        node.ndarray.dense.shape.extend(array.shape)
        node.ndarray.dense.dtype = array.dtype.str
        node.type = "ndarray"
    elif isinstance(value, Mapping):
        node.dict.SetInParent()
        for key, item in value.items():
            _set_value(node.dict.data[str(key)], item)
    elif isinstance(value, list | tuple | set):
        node.list.SetInParent()
        for item in value:
            _set_value(node.list.data.add(), item)
    else:
        raise TypeError(f"cannot send a {type(value).__name__} in a document: {value!r}")


def encode_doc(doc: Mapping[str, Any], proto: DocProto | None = None) -> DocProto:
    """A document dict as DocArray's `DocProto`."""
    proto = proto if proto is not None else DocProto()
    for name, value in doc.items():
        if value is None:
            continue
        node = proto.data[name]
        if name in DOC_LISTS:
            node.doc_array.SetInParent()
            for item in value:
                encode_doc(item, node.doc_array.docs.add())
        elif name == "id":
            node.text = str(value)
            node.type = "id"
        elif name == "embedding":
            _set_value(node, np.asarray(value))
        else:
            _set_value(node, value)
    return proto


def encode_list(docs: Sequence[Mapping[str, Any]], proto: DocListProto | None = None
                ) -> DocListProto:
    """Document dicts as DocArray's `DocListProto`."""
    proto = proto if proto is not None else DocListProto()
    for doc in docs:
        encode_doc(doc, proto.docs.add())
    return proto


def _value(node: NodeProto) -> Any:
    kind = node.WhichOneof("content")
    if kind is None:
        return None
    if kind == "ndarray":
        dense = node.ndarray.dense
        return np.frombuffer(dense.buffer, dtype=np.dtype(dense.dtype)).reshape(tuple(dense.shape))
    if kind == "doc":
        return decode_doc(node.doc)
    if kind == "doc_array":
        return [decode_doc(doc) for doc in node.doc_array.docs]
    if kind == "dict":
        return {key: _value(item) for key, item in node.dict.data.items()}
    if kind in ("list", "set", "tuple"):
        return [_value(item) for item in getattr(node, kind).data]
    return getattr(node, kind)


def decode_doc(proto: DocProto) -> WireDoc:
    """DocArray's `DocProto` as a document dict (None for fields sent empty)."""
    return {name: _value(node) for name, node in proto.data.items()}


def request_bytes(endpoint: str, docs: Sequence[Mapping[str, Any]],
                  parameters: Mapping[str, Any]) -> bytes:
    """One request to the gateway, as Jina's client makes it: the endpoint in the header,
    the parameters as a protobuf Struct, the documents as a DocArray v2 document list."""
    request = DataRequestProto()
    request.header.request_id = uuid.uuid4().hex
    request.header.exec_endpoint = endpoint
    if parameters:
        struct = Struct()
        struct.update(dict(parameters))
        request.parameters.CopyFrom(struct)
    request.data.docs.SetInParent()
    encode_list(docs, request.data.docs)
    return request.SerializeToString()


def parse_reply(data: bytes) -> DataRequestProto:
    return DataRequestProto.FromString(data)


def reply_docs(reply: DataRequestProto) -> list[WireDoc]:
    """The documents of a reply, whichever way the gateway packed them."""
    if reply.data.WhichOneof("documents") == "docs_bytes":
        docs = DocListProto.FromString(reply.data.docs_bytes)
    else:
        docs = reply.data.docs
    return [decode_doc(doc) for doc in docs.docs]


def as_wire_doc(doc: Any) -> WireDoc:
    """A document dict from a dict or from one of the Flow's DocArray documents (read by
    their fields, so DocArray need not be imported here)."""
    if isinstance(doc, Mapping):
        return dict(doc)
    fields = getattr(type(doc), "model_fields", None)
    if fields is None:
        raise TypeError(f"a document is a dict or a memeflow document, not {type(doc).__name__}")
    out: WireDoc = {}
    for name in fields:
        value = getattr(doc, name)
        if value is None:
            continue
        if name in DOC_LISTS:
            value = [as_wire_doc(item) for item in value]
        elif name == "embedding":
            value = np.asarray(value)
        elif name == "id":
            value = str(value)
        out[name] = value
    return out
