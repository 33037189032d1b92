"""Everything the gateway checks before Jina sees a call: `ACCESS_CHECK` is the object the
gateway's access hook takes (`protect_http(app)`, `grpc_interceptors()`)."""

from typing import Any

import grpc

from memeflow import config
from memeflow.gateway.auth import ApiKeyCheck
from memeflow.gateway.grpc_limits import GrpcRequestCheck
from memeflow.gateway.hosts import HostGuard
from memeflow.gateway.http_limits import HttpRequestLimit


class GatewayChecks(ApiKeyCheck):
    """The API key on both ports; on HTTP also the request size, depth and Unicode checks
    and, without a key (or with MEMEFLOW_ALLOWED_HOSTS), the Host/Origin guard; on gRPC a
    request that does not parse is the caller's error."""

    def protect_http(self, app: Any) -> None:
        app.add_middleware(HttpRequestLimit)
        super().protect_http(app)  # added after the limits, so it runs first: no key, no body read
        if not self.key or config.allowed_hosts():
            app.add_middleware(HostGuard)  # added last, so it runs first of all

    def grpc_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [*super().grpc_interceptors(), GrpcRequestCheck()]


ACCESS_CHECK = GatewayChecks()  # reads MEMEFLOW_API_KEY once, when the gateway imports it
