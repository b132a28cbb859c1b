"""StatsD: per job, a timing `<prefix>.job.<name>.run_time` (ms) and counters
`<prefix>.job.<name>.finished|failed|retried|dead`, sent over UDP by the workers.

`JOBCTL_STATSD=host:port` (or `jobctl work --statsd host:port`) turns it on, JOBCTL_STATSD_PREFIX
sets the prefix (default `jobctl`). The client is pystatsd (`statsd` on PyPI); UDP never waits
for the server, and a send that fails is dropped: metrics never affect a job.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import JobStopped
from .base import JobInfo, Middleware

ADDRESS_ENV = "JOBCTL_STATSD"
PREFIX_ENV = "JOBCTL_STATSD_PREFIX"
DEFAULT_PREFIX = "jobctl"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")  # ':', '|' and '@' are StatsD's separators

_address: tuple[str, int] | None = None


def parse_address(text: str) -> tuple[str, int]:
    """host:port; raises ValueError."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port like 127.0.0.1:8125, got {text!r}")
    return host.strip("[]"), int(port)


def configure(address: str | None) -> None:
    """Send to `address` (host:port) from the workers started after this call; None: do not."""
    global _address
    _address = parse_address(address) if address else None


def configured() -> StatsdSender | None:
    if _address is None:
        return None
    return StatsdSender(*_address, prefix=os.environ.get(PREFIX_ENV, "").strip() or DEFAULT_PREFIX)


class StatsdSender(Middleware):
    instant = True  # one UDP datagram, never waited for

    def __init__(self, host: str, port: int, prefix: str):
        self.host, self.port, self.prefix = host, port, prefix
        self._client: Any = None

    def _send(self, send: str, job: JobInfo, metric: str, *value: Any) -> None:
        try:
            if self._client is None:  # made in the worker process, after the fork
                from statsd import StatsClient

                self._client = StatsClient(self.host, self.port, prefix=self.prefix)
            getattr(self._client, send)(f"job.{_UNSAFE.sub('_', job.name)}.{metric}", *value)
        except OSError:  # unresolvable host, no route: the metric is lost, never the job
            pass

    def after_attempt(self, job: JobInfo, result: Any, exception: BaseException | None, run_seconds: float) -> None:
        self._send("timing", job, "run_time", run_seconds * 1000)
        if exception is None:
            self._send("incr", job, "finished")
        elif not isinstance(exception, JobStopped):
            self._send("incr", job, "failed")

    def on_retry(self, job: JobInfo, exception: BaseException, delay: float) -> None:
        self._send("incr", job, "retried")

    def on_dead(self, job: JobInfo, exception: BaseException) -> None:
        self._send("incr", job, "dead")
