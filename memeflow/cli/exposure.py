"""What the Flow exposes, and where: the gateway on MEMEFLOW_BIND (localhost by default),
the executors and every metrics endpoint on loopback only, metrics on known ports.

Jina binds every server to 0.0.0.0 unless told otherwise; a meme search started on a
laptop should not be reachable from the café's network, and nobody but the gateway needs
to reach an executor.
"""

import contextlib
import os
import random
import socket
from pathlib import Path
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


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
ROOM = 1000  # ports enough for many Flows' executors on one machine


def executor_port_range(ephemeral: tuple[int, int] | None) -> tuple[int, int] | None:
    """Where Jina may pick the executors' ports: outside the kernel's ephemeral range.

    Jina picks them from 49153-65535 (`jina.helper.random_port`) when the Flow is built and
    the executor binds seconds later, after its model loads; Linux hands out 32768-60999 to
    outgoing connections (a model download, a Milvus client, the gateway's own channels),
    and one of those can take the port in between: the Flow then aborts with
    PortAlreadyUsed. Ports above (or else below) the ephemeral range are never handed out
    that way. `ephemeral`: the kernel's (low, high), inclusive; None where unknown.
    Returns (min, max) inclusive, or None to keep Jina's default."""
    if ephemeral is None:
        return None
    low, high = ephemeral
    if 65535 - high >= ROOM:
        return high + 1, 65535
    if low - 1024 >= ROOM:
        return 1024, low - 1
    return None


def _ephemeral_range() -> tuple[int, int] | None:
    """The kernel's ephemeral port range (Linux), or None elsewhere."""
    with contextlib.suppress(OSError, ValueError):
        low, high = EPHEMERAL_RANGE_FILE.read_text().split()
        return int(low), int(high)
    return None


def child_env() -> dict[str, str]:
    """Jina binds executors to JINA_DEFAULT_HOST: keep them on loopback, on ports outside
    the ephemeral range (unless JINA_RANDOM_PORT_MIN/MAX are set already)."""
    env = {"JINA_DEFAULT_HOST": LOOPBACK}
    ports = executor_port_range(_ephemeral_range())
    if ports is not None and not ({"JINA_RANDOM_PORT_MIN", "JINA_RANDOM_PORT_MAX"}
                                  & os.environ.keys()):
        env.update(JINA_RANDOM_PORT_MIN=str(ports[0]), JINA_RANDOM_PORT_MAX=str(ports[1]))
    return env


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


def _listen_port_range() -> tuple[int, int]:
    """Where `free_port_run` picks the ports of a Flow started beside others: below the ephemeral
    range when there is room (neither outgoing connections nor executors use it), else
    Jina's executor range."""
    low = (_ephemeral_range() or (32768, 60999))[0]
    if low - 1 - 20000 >= ROOM:
        return 20000, low - 1
    return executor_port_range(_ephemeral_range()) or (49153, 65535)


_handed_out: set[int] = set()


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports, none handed out before by this
    process, for a Flow started beside others (`reindex`'s, the tests' and benchmarks'):
    taken from outside the ephemeral range, so no outgoing connection takes one before the
    Flow binds it."""
    low, high = _listen_port_range()
    for _ in range(200):
        base = random.randint(low, high - count + 1)
        ports = range(base, base + count)
        if _handed_out.intersection(ports):
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in ports:
                    stack.enter_context(socket.socket()).bind((LOOPBACK, port))
        except OSError:
            continue
        _handed_out.update(ports)
        return base
    raise RuntimeError(f"no {count} consecutive free ports in {low}-{high}")
