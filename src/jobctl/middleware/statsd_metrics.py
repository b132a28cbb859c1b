"""StatsD: per job, a timing `<prefix>.job.<name>.run_time` (ms) and counters
`<prefix>.job.<name>.finished|failed|retried|dead`, sent over UDP by the workers.

`JOBCTL_STATSD=host:port` (or `jobctl work --statsd host:port`) turns it on, JOBCTL_STATSD_PREFIX
sets the prefix (default `jobctl`): the settings read them (config/settings.py, StatsdTarget) and
each worker is given the target. The client is pystatsd (`statsd` on PyPI); UDP never waits
for the server, and a send that fails is dropped: metrics never affect a job.
"""

from __future__ import annotations

import re
from typing import Any

from ..config.settings import StatsdTarget
from ..errors import JobStopped
from .base import JobInfo, Middleware

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")  # ':', '|' and '@' are StatsD's separators


class StatsdSender(Middleware):
    instant = True  # one UDP datagram, never waited for

    def __init__(self, target: StatsdTarget):
        self.host, self.port, self.prefix = target.host, target.port, target.prefix
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
