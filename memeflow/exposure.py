"""What the Flow exposes, and where: the gateway on MEMEFLOW_BIND (localhost by default),
the executors and every metrics endpoint on loopback only, metrics on known ports.

Jina binds every server to 0.0.0.0 unless told otherwise; a meme search started on a
laptop should not be reachable from the café's network, and nobody but the gateway needs
to reach an executor.
"""

from typing import Any

from memeflow import config

LOOPBACK = "127.0.0.1"


def expose(flow: dict[str, Any]) -> dict[str, Any]:
    """The Flow config with the gateway's host and, when monitoring is on, metrics ports:
    the gateway's at MEMEFLOW_METRICS_PORT, each executor's at the next ones."""
    gateway = flow.setdefault("with", {})
    gateway["host"] = config.bind_host()
    if gateway.get("monitoring"):
        base = config.metrics_port()
        gateway["port_monitoring"] = base
        for offset, executor in enumerate(flow.get("executors") or [], start=1):
            executor.setdefault("monitoring", True)
            executor["port_monitoring"] = base + offset
    return flow


def child_env() -> dict[str, str]:
    """Jina binds executors to JINA_DEFAULT_HOST: keep them on loopback."""
    return {"JINA_DEFAULT_HOST": LOOPBACK}


def metrics_on_loopback() -> None:
    """Prometheus' `start_http_server` listens on 0.0.0.0 by default; Jina does not pass an
    address. Executor processes are forked from this one and inherit the patch."""
    import prometheus_client

    original = prometheus_client.start_http_server

    def loopback_only(port: int, addr: str = LOOPBACK, **kwargs: Any) -> Any:
        return original(port, addr=LOOPBACK if addr == "0.0.0.0" else addr, **kwargs)

    prometheus_client.start_http_server = loopback_only
