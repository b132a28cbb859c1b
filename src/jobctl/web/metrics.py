"""Prometheus metrics: a collector that reads through the data API at scrape time.

The job type's label is `job_name`: Prometheus attaches its own `job` label (the scrape job)
to every series and would rename ours to `exported_job`.

Nothing is counted in this process: every scrape reads the numbers the workers keep in Redis
(queue depths, job-tracking counters and histograms, worker records), so any number of exporters
on any hosts report the same values, and a scrape costs the same with a million queued jobs.

    token = metrics.token_from_environment("127.0.0.1", no_auth=False, flag="--no-auth")
    server = metrics.serve(url, config, 9121, "127.0.0.1", token=token)   # what `jobctl metrics` does
    ...
    server.shutdown()

Like the dashboard, the exporter answers only with a token (JOBCTL_METRICS_TOKEN, sent as
`Authorization: Bearer <token>` or as basic auth's password, the two ways a Prometheus scrape
config carries one), listens on 127.0.0.1 unless told otherwise, and reads no X-Forwarded-*
header: the client's address it logs is the peer's. Without a token it serves only on a loopback
address, and only when the operator says so (`--no-auth`): what reaches it then is this host's.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from threading import Thread
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import redis
from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector, CollectorRegistry

from .. import logs
from ..api import jobstats, reads
from ..config.queues import QueuesConfig
from ..errors import JobctlError, UsageError
from ..jobs import catalogue
from ..store import keys
from ..store.connection import connect
from . import http_url, is_loopback
from .tokens import MIN_TOKEN_LENGTH, Token, bearer, check_length

TOKEN_ENV = "JOBCTL_METRICS_TOKEN"
REALM = 'realm="jobctl metrics"'


def _registered_job_names() -> list[str]:
    return [spec.name for spec in catalogue.all_jobs()]


class JobctlCollector(Collector):
    def __init__(
        self,
        connection_factory: Callable[[], redis.Redis],
        config: QueuesConfig,
        job_names: Callable[[], list[str]] = _registered_job_names,
    ):
        self._connection_factory = connection_factory
        self._connection: redis.Redis | None = None
        self.config = config
        self.job_names = job_names

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("jobctl_redis_up", "1 when the last scrape read Redis, 0 when Redis did not answer.")
        try:
            if self._connection is None:
                self._connection = self._connection_factory()
            overview = reads.overview(self._connection, self.config, running_in_full=False)
            names = jobstats.tracked_job_names(self._connection, self.job_names())
            job_types = jobstats.job_type_stats(self._connection, names, history=0)
            processed = jobstats.processed_counts(self._connection)
        except (redis.RedisError, JobctlError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _queue_metrics(overview)
        yield from _breaker_metrics(overview.breakers)
        yield _processed_metric(processed)
        yield from _job_type_metrics(job_types)


def _queue_metrics(overview: reads.Overview) -> list[GaugeMetricFamily]:
    depth = GaugeMetricFamily("jobctl_queue_jobs", "Jobs per queue and state.", labels=["queue", "state"])
    latency = GaugeMetricFamily(
        "jobctl_queue_latency_seconds", "Age of the oldest queued job (0 when none is queued).", labels=["queue"]
    )
    workers = GaugeMetricFamily("jobctl_workers", "Live workers per queue, busy or idle.", labels=["queue", "state"])
    bounds = {
        bound: GaugeMetricFamily(
            f"jobctl_queue_{bound}_workers",
            f"The {word} of the queue's worker_count range in queue.yml, per `jobctl work` (a fixed count: that count).",
            labels=["queue"],
        )
        for bound, word in (("min", "bottom"), ("max", "top"))
    }
    unserved = GaugeMetricFamily(
        "jobctl_unserved_jobs",
        "Jobs waiting (queued, scheduled, deferred) on queues that are not in queue.yml, so no worker serves them.",
        labels=["queue"],
    )
    for queue in overview.unserved:
        unserved.add_metric([queue.name], queue.waiting)
    for queue in overview.queues:
        for state, count in queue.counts.items():
            depth.add_metric([queue.name, state], count)
        latency.add_metric([queue.name], queue.latency_seconds or 0.0)
        workers.add_metric([queue.name, "busy"], queue.busy)
        workers.add_metric([queue.name, "idle"], queue.workers - queue.busy)
        for bound, family in bounds.items():
            if (value := getattr(queue, f"{bound}_workers")) is not None:
                family.add_metric([queue.name], value)
    return [depth, latency, workers, *bounds.values(), unserved]


BREAKER_STATES = ("closed", "open", "half_open")


def _breaker_metrics(breakers: list[reads.BreakerSummary]) -> list[Metric]:
    state = GaugeMetricFamily(
        "jobctl_breaker_state",
        "1 for the state each circuit breaker of queue.yml is in (closed, open, half_open), 0 for the others.",
        labels=["breaker", "state"],
    )
    opens = CounterMetricFamily(
        "jobctl_breaker_opens",
        "Times each circuit breaker opened (a failed half-open trial included).",
        labels=["breaker"],
    )
    for breaker in breakers:
        for name in BREAKER_STATES:
            state.add_metric([breaker.name, name], 1 if breaker.state == name else 0)
        opens.add_metric([breaker.name], breaker.opens)
    return [state, opens]


def _processed_metric(processed: dict[tuple[str, str, str], int]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "jobctl_jobs_processed",
        "Job executions by job type, queue and outcome (finished or failed).",
        labels=["job_name", "queue", "outcome"],
    )
    for labels, count in sorted(processed.items()):
        family.add_metric(list(labels), count)
    return family


def _job_type_metrics(job_types: list[jobstats.JobTypeStats]) -> list[Metric]:
    retries = CounterMetricFamily(
        "jobctl_job_retries", "Failed executions that were scheduled for a retry.", labels=["job_name"]
    )
    run_time = HistogramMetricFamily("jobctl_job_run_seconds", "How long executions ran.", labels=["job_name"])
    bounds = (*keys.RUN_TIME_BUCKETS, float("inf"))
    for job_type in job_types:
        totals = job_type.totals
        retries.add_metric([job_type.name], totals.retries)
        cumulative, buckets = 0, []
        for bound in bounds:  # stored per bucket; Prometheus buckets count everything up to `le`
            cumulative += job_type.histogram.get(float(bound), 0)
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        run_time.add_metric([job_type.name], buckets, totals.run_seconds)
    return [retries, run_time]


def token_from_environment(host: str, *, no_auth: bool, flag: str) -> str | None:
    """The exporter's token, from $JOBCTL_METRICS_TOKEN; None when the operator opted out with
    `flag` (--no-auth), which only a loopback `host` allows. UsageError (one line) otherwise."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if no_auth:
        if token:
            raise UsageError(f"{flag} with ${TOKEN_ENV} set: serve with the token (drop {flag}) or without (unset it)")
        if not is_loopback(host):
            raise UsageError(
                f"{flag} serves /metrics without a token on a loopback address only (127.0.0.1, ::1), not on "
                f"{host}: set {TOKEN_ENV} instead"
            )
        return None
    if not token:
        raise UsageError(
            f"/metrics needs a token: set {TOKEN_ENV} (at least {MIN_TOKEN_LENGTH} characters, e.g. "
            f"$(openssl rand -hex 16)) and give Prometheus the same, or pass {flag} to serve on a loopback address without one"
        )
    check_length(token, TOKEN_ENV, "and give Prometheus the same")
    return token


def _credentials(authorization: str) -> str | None:
    """The token a scrape sent: `Bearer <token>`, or basic auth's password (the user name is not read)."""
    text = authorization.encode("latin-1").decode("utf-8", "surrogateescape")  # WSGI decodes headers as latin-1
    scheme, _, value = text.partition(" ")
    if scheme.lower() != "basic":
        return bearer(text)
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        return None
    return decoded.partition(b":")[2].decode("utf-8", "surrogateescape")


def _behind_token(app: WSGIApplication, token: Token) -> WSGIApplication:
    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sent = environ.get("HTTP_AUTHORIZATION")
        if sent is not None and token.matches(_credentials(sent)):
            return app(environ, start_response)
        if sent is not None:  # a scraper with a stale token is worth a line; one that sends none is not
            logs.get().warning("jobctl metrics: wrong token from %s", environ.get("REMOTE_ADDR", "-"))
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", f"Bearer {REALM}"),
                ("WWW-Authenticate", f'Basic {REALM}, charset="UTF-8"'),
                ("Content-Type", "text/plain; charset=utf-8"),
            ],
        )
        return [f"401 Unauthorized: send ${TOKEN_ENV} as a bearer token or as basic auth's password\n".encode()]

    return guarded


class _Server(ThreadingWSGIServer):
    def __init__(self, address: tuple[str, int], family: socket.AddressFamily):
        self.address_family = family  # before the socket is made: an IPv6 address needs AF_INET6
        super().__init__(address, _QuietHandler)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No line per scrape."""


@dataclass
class MetricsServer:
    """The HTTP server answering /metrics from a daemon thread."""

    httpd: _Server
    thread: Thread
    host: str
    authenticated: bool

    @property
    def port(self) -> int:
        return self.httpd.server_port

    @property
    def url(self) -> str:
        return http_url(self.host, self.port, "/metrics")

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(
    url_or_connection_factory: str | Callable[[], redis.Redis],
    config: QueuesConfig,
    port: int,
    host: str = "127.0.0.1",
    *,
    token: str | None,
) -> MetricsServer:
    """Serve /metrics on host:port (port 0: any free port, see .port) until .shutdown(), to
    requests that carry `token` (token_from_environment()); with None, to any request."""
    factory = url_or_connection_factory
    if isinstance(factory, str):
        factory = partial(connect, factory, check=False)
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(JobctlCollector(factory, config))
    app = make_wsgi_app(collectors)
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        httpd = _Server((str(address[0]), port), family)
    except OSError as exc:
        raise JobctlError(f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    httpd.set_app(app if token is None else _behind_token(app, Token(token)))
    thread = Thread(target=httpd.serve_forever, name="jobctl-metrics", daemon=True)
    thread.start()
    # worker processes forked by the supervisor must not hold the listening socket open
    os.register_at_fork(after_in_child=httpd.socket.close)
    return MetricsServer(httpd, thread, host, authenticated=token is not None)
