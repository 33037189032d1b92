"""Everything the gateway checks before Jina sees a call: `ACCESS_CHECK` is the object the
gateway's access hook takes (`protect_http(app)`, `grpc_interceptors()`)."""

from typing import Any

from memeflow.gateway.auth import ApiKeyCheck
from memeflow.gateway.http_limits import HttpRequestLimit


class GatewayChecks(ApiKeyCheck):
    """The API key on both ports; on HTTP also the request size limits."""

    def protect_http(self, app: Any) -> None:
        app.add_middleware(HttpRequestLimit)
        super().protect_http(app)  # added last, so it runs first: no key, no body read


ACCESS_CHECK = GatewayChecks()  # reads MEMEFLOW_API_KEY once, when the gateway imports it
