"""memeflow's gateway: Jina's gRPC and HTTP servers, plus the search page on the HTTP port.

With `protocol: [grpc, http]` Jina would build a `CompositeGateway` of its stock servers;
`MemeflowGateway` builds the same two from subclasses instead, so both ports answer
exactly as before: gRPC on the first, the Jina HTTP API (POST /index, /search, ...,
/docs) on the second. The HTTP app also serves the search page (`memeflow.gateway.page`)
at `/`, answers a request an executor refused (`memeflow.refusals`) with 400, not Jina's
500, and a request of one document that failed with 400 too (`memeflow.gateway.answers`);
GET /count and GET /status answer plain JSON.

Access-check hook: `AUTH` below is None (no check) or an object with the two methods of
`GatewayAuth`: `protect_http(app)` gets the finished FastAPI app (API and page) to add
middleware to; `grpc_interceptors()` returns `grpc.aio.ServerInterceptor`s for the gRPC
port, run before Jina's own. For a check in `auth.py` beside this file, list `auth.py`
before `gateway.py` under `py_modules` in config.yml (Jina imports it as `auth`) and
replace the `AUTH: ...` line below with `from auth import ACCESS_CHECK as AUTH`. The page's
API calls take their headers from `apiHeaders()` in static/app.js.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import grpc
from docarray import DocList
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jina.enums import ProtocolType
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.gateway.grpc import GRPCGateway
from jina.serve.runtimes.gateway.http import HTTPGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

from memeflow.documents import MemeDoc
from memeflow.gateway.answers import DocumentFailed, document_failed, failed_document, plain
from memeflow.gateway.checks import ACCESS_CHECK
from memeflow.gateway.files import IndexedFiles
from memeflow.gateway.page import ThumbnailCache, load_assets, search_page
from memeflow.refusals import Refused, refusal_body, refused

STATIC = Path(__file__).resolve().parent / "static"


class GatewayAuth(Protocol):
    """An access check for both ports (see the module docstring)."""

    def protect_http(self, app: FastAPI) -> None: ...

    def grpc_interceptors(self) -> list[grpc.aio.ServerInterceptor]: ...


AUTH: GatewayAuth | None = ACCESS_CHECK  # MEMEFLOW_API_KEY on both ports, HTTP size limits


class MemeflowGRPCGateway(GRPCGateway):
    """Jina's gRPC server, with the access check's interceptors when there is one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if AUTH is not None:
            self.grpc_tracing_server_interceptors: list[grpc.aio.ServerInterceptor] = [
                *AUTH.grpc_interceptors(),
                *(self.grpc_tracing_server_interceptors or []),
            ]


class _RefusingStreamer:
    """Jina's streamer as the HTTP API sees it: an answer whose error is a refusal stops the
    route with `Refused` (Jina's route would answer any error with 500), and the answer to
    a request of one document that failed stops it with `DocumentFailed`."""

    def __init__(self, streamer: Any) -> None:
        self._streamer = streamer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streamer, name)

    async def stream_docs(self, docs: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        single = docs is not None and len(docs) == 1
        async for answer in self._streamer.stream_docs(docs, *args, **kwargs):
            header = getattr(answer, "header", None)  # with return_results: whole responses
            if header is not None and (message := refused(header.status)) is not None:
                raise Refused(message)
            if single and header is not None and (failed := failed_document(answer)):
                raise failed
            yield answer


async def _bad_request(request: Request, refusal: Exception) -> JSONResponse:
    assert isinstance(refusal, Refused)
    return JSONResponse(refusal_body(refusal.message), status_code=400)


class MemeflowHTTPGateway(HTTPGateway):
    """Jina's HTTP API with the search page mounted behind it."""

    @property
    def app(self) -> FastAPI:
        # Jina's default app (/index, /search, ..., /docs), its routes built on a streamer
        # that turns refusals into 400s; the gateway itself keeps Jina's streamer.
        handler = self._request_handler
        streamer = handler.streamer
        handler.streamer = _RefusingStreamer(streamer)
        try:
            app = super().app
        finally:
            handler.streamer = streamer
        app.add_exception_handler(Refused, _bad_request)
        app.add_exception_handler(DocumentFailed, document_failed)
        files = IndexedFiles(self._stored_uris)
        for endpoint in ("/count", "/status"):  # beside Jina's POST routes of the same path
            app.add_api_route(endpoint, plain(self._ask, endpoint, files), methods=["GET"],
                              summary=f"{endpoint[1:]} as plain JSON", tags=["memeflow"])
        thumbnails = ThumbnailCache(self._fetch_thumbnail)
        # Mounted last: the API's routes match first. A mount, not a route, at `/`, so
        # Jina keeps its own health route and does not warn that `/` is taken.
        app.mount("/", search_page(load_assets(STATIC), thumbnails, files))
        if AUTH is not None:
            AUTH.protect_http(app)
        return app

    async def _ask(self, endpoint: str, docs: list[MemeDoc]) -> list[MemeDoc]:
        """The documents the Flow answers `endpoint` with (through Jina's own streamer)."""
        answers: list[MemeDoc] = []
        async for reply in self.streamer.stream_docs(
            docs=DocList[MemeDoc](docs), exec_endpoint=endpoint, return_type=DocList[MemeDoc],
        ):
            answers.extend(reply)
        return answers

    async def _stored_uris(self, ids: list[str]) -> dict[str, str | None]:
        """The stored uri of each of `ids` that is indexed (the indexer's /get)."""
        found = await self._ask("/get", [MemeDoc(id=doc_id) for doc_id in ids])
        return {doc.id: doc.uri for doc in found if doc.id}

    async def _fetch_thumbnail(self, doc_id: str) -> bytes | None:
        """Ask the indexer (through the Flow) for one document's preview."""
        found = None
        async for docs in self.streamer.stream_docs(
            docs=DocList[MemeDoc]([MemeDoc(id=doc_id)]),
            exec_endpoint="/thumbnail",
            return_type=DocList[MemeDoc],
        ):
            found = next((d.thumbnail for d in docs if d.id == doc_id and d.thumbnail), found)
        return found


class MemeflowGateway(CompositeBaseServer, BaseGateway):
    """One server per protocol, like Jina's CompositeGateway, built from memeflow's classes."""

    SERVERS: ClassVar[dict[ProtocolType, type]] = {
        ProtocolType.GRPC: MemeflowGRPCGateway, ProtocolType.HTTP: MemeflowHTTPGateway,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.servers = []
        for server_kwargs in self._server_kwargs:
            protocol = server_kwargs["runtime_args"]["protocol"]
            if protocol not in self.SERVERS:
                raise ValueError(f"memeflow's gateway serves grpc and http, not {protocol}")
            self.servers.append(self.SERVERS[protocol](**server_kwargs))
        self.gateways = self.servers  # the name older Jina code reads
