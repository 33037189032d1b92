"""Which names the HTTP port answers to: the guard against DNS rebinding and other sites.

A web page the user visits can point its own name at 127.0.0.1 (DNS rebinding) and then
call the service as its own server: the browser sends `Host: attacker.example:51001`, and
a service without an API key would let the page read, delete or clear the index. So when
no key is set (or MEMEFLOW_ALLOWED_HOSTS is), every HTTP request is answered only when:

- its `Host` is `localhost` or a `*.localhost` name (RFC 6761: never given out by DNS),
  an IP address (a page cannot rebind an address: its origin is then that address, not
  the page's site), the address the gateway is bound to, or a name in
  MEMEFLOW_ALLOWED_HOSTS (a reverse proxy, a LAN name);
- a browser's `Origin`, when sent, is the service's own (the same host and port as
  `Host`) or in MEMEFLOW_ALLOWED_HOSTS: a page of another site, even one served from
  this machine, gets 403 (`Origin: null`, from sandboxed frames and files, too);
- a browser's `Sec-Fetch-Site` is `same-origin` or `none` (typed in), except when
  following a link to a page (`Sec-Fetch-Mode: navigate`): another site's `<img>` of a
  thumbnail, which sends no Origin, is refused too.

Only `/dry_run` (`jina ping`'s health check, which reveals nothing) is open. The same
guard is used by Tasmota (#6767), webpack-dev-server and Jupyter. The gRPC port is not
guarded: browsers speak plaintext HTTP/1.1 only (HTTP/2 only over TLS), and gRPC needs
HTTP/2, so no page can make a call there.
"""

import ipaddress
import json
import logging
from urllib.parse import urlsplit

from memeflow import config
from memeflow.config import ALLOWED_HOSTS_ENV
from memeflow.gateway.auth import ASGIApp, Receive, Scope, Send
from memeflow.uris import terminal_safe

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/dry_run"})
BROWSER_OWN_SITES = frozenset({"same-origin", "none"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def split_host(value: str) -> tuple[str, str]:
    """(name, port) of a `Host` header or URL authority: lower-case, without brackets or
    a trailing dot; port '' when none is given."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:51001
        name, _, rest = value[1:].partition("]")
        return name, rest.removeprefix(":")
    name, sep, port = value.rpartition(":")
    if not sep or ":" in name:  # no port, or a bare IPv6 address
        name, port = value, ""
    return name.rstrip("."), port


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """The names the service answers to (see the module docstring)."""

    def __init__(self, allowed: frozenset[str] | None = None, bind: str | None = None) -> None:
        self.allowed = allowed if allowed is not None else config.allowed_hosts()
        bind_name, _ = split_host(bind if bind is not None else config.bind_host())
        self.bind = "" if bind_name in WILDCARD_BINDS else bind_name

    def _listed(self, name: str, port: str) -> bool:
        return "*" in self.allowed or name in self.allowed or f"{name}:{port}" in self.allowed

    def host_allowed(self, host: str) -> bool:
        name, port = split_host(host)
        return (name == "localhost" or name.endswith(".localhost") or _is_address(name)
                or name == self.bind or self._listed(name, port))

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Whether a browser's Origin is the service's own (or allowed by name)."""
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null": a sandboxed frame or a local file
        name, port = split_host(parts.netloc)
        port = port or ("443" if parts.scheme == "https" else "80")
        own_name, own_port = split_host(host)
        if (name, port) == (own_name, own_port or "80"):
            return True
        return self._listed(name, port)

    def refusal(self, method: str, path: str, headers: dict[str, str], port: int) -> str | None:
        """Why a request is refused, or None when it may be answered."""
        if path in OPEN_PATHS:
            return None
        host = headers.get("host", "")
        if host and not self.host_allowed(host):
            return (f"Host {host!r} is not a name of this service: open it as "
                    f"http://localhost:{port}/, or add the name to {ALLOWED_HOSTS_ENV} "
                    "(a guard against DNS rebinding)")
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return (f"a page of another site ({origin!r}) may not call this service; to allow "
                    f"it, add its name to {ALLOWED_HOSTS_ENV}")
        site = headers.get("sec-fetch-site")
        if (site is not None and site not in BROWSER_OWN_SITES
                and headers.get("sec-fetch-mode") != "navigate"
                and not (origin is not None and self.origin_allowed(origin, host))):
            return (f"{method} {path} from a page of another site ({site}) is refused; "
                    f"to allow a site, add its name to {ALLOWED_HOSTS_ENV}")
        return None


class HostGuard:
    """ASGI middleware: 403 and one log line for a request the policy refuses."""

    def __init__(self, app: ASGIApp, policy: HostPolicy | None = None) -> None:
        self.app, self.policy = app, policy or HostPolicy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        method = scope.get("method", "GET")
        server = scope.get("server") or ("", 0)
        reason = self.policy.refusal(method, scope["path"], headers, server[1] or 0)
        if reason is None:
            return await self.app(scope, receive, send)
        logger.warning("refused %s %s: %s", method, terminal_safe(scope["path"]), reason)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return None
        body = json.dumps({"detail": reason}).encode()
        await send({
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})
        return None
