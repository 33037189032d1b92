"""What the Flow exposes, and where: the gateway on MEMEFLOW_BIND (localhost by default),
the executors and every metrics endpoint on loopback only, metrics on known ports.

Jina binds every server to 0.0.0.0 unless told otherwise; a meme search started on a
laptop should not be reachable from the café's network, and nobody but the gateway needs
to reach an executor.
"""

import contextlib
import random
import socket
from typing import Any

from memeflow import config

LOOPBACK = "127.0.0.1"


def expose(flow: dict[str, Any]) -> dict[str, Any]:
    """The Flow config with the gateway's host and, when MEMEFLOW_METRICS_PORT is set,
    Prometheus monitoring: the gateway's metrics on that port, each executor's on the next."""
    gateway = flow.setdefault("with", {})
    gateway["host"] = config.bind_host()
    base = config.metrics_port()
    if base is not None:
        gateway.update(monitoring=True, port_monitoring=base)
        for offset, executor in enumerate(flow.get("executors") or [], start=1):
            executor.update(monitoring=True, port_monitoring=base + offset)
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

    # Called as the original is; mypy sees only the narrower signature being replaced.
    prometheus_client.start_http_server = loopback_only  # type: ignore[assignment]


def metrics_collect_fix() -> None:
    """Jina 3.34's request-size summary unpacks metric samples as 5-tuples; prometheus_client
    0.26 has 6 fields, so every /metrics scrape of an executor failed with a 500. Read the
    first five fields instead (the sixth, native histograms, is unused)."""
    from jina.serve.monitoring import _SummaryDeprecated

    def collect(self: _SummaryDeprecated) -> list[Any]:
        metric = self._get_metric()
        for suffix, labels, value, timestamp, exemplar, *_ in self._samples():
            metric.add_sample(self._name + suffix, labels, value, timestamp, exemplar)
            if self._old_name:
                metric.add_sample(self._old_name + suffix, labels, value, timestamp, exemplar)
        return [metric]

    _SummaryDeprecated.collect = collect


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports (a Flow's metrics ports), for
    tests and benchmarks that start a Flow beside others."""
    for _ in range(100):
        base = random.randint(20000, 60000 - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    stack.enter_context(socket.socket()).bind((LOOPBACK, port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")
