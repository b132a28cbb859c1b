"""Prometheus metrics: a collector that reads through the data API at scrape time.

The job type's label is `job_name`: Prometheus attaches its own `job` label (the scrape job)
to every series and would rename ours to `exported_job`.

Nothing is counted in this process: every scrape reads the numbers the workers keep in Redis
(queue depths, job-tracking counters and histograms, worker records), so any number of exporters
on any hosts report the same values, and a scrape costs the same with a million queued jobs.

    server = metrics.serve(url, config, port=9121)        # what `jobctl metrics` does
    ...
    server.shutdown()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from threading import Thread
from typing import TYPE_CHECKING

import redis
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ..api import jobstats, reads
from ..config.queues import QueuesConfig
from ..errors import JobctlError
from ..jobs import catalogue
from ..store import keys
from ..store.connection import connect

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


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


@dataclass
class MetricsServer:
    """The HTTP server answering /metrics from a daemon thread."""

    httpd: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return self.httpd.server_port

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(
    url_or_connection_factory: str | Callable[[], redis.Redis],
    config: QueuesConfig,
    port: int,
    host: str = "0.0.0.0",
) -> MetricsServer:
    """Serve /metrics on host:port (port 0: any free port, see .port) until .shutdown()."""
    factory = url_or_connection_factory
    if isinstance(factory, str):
        factory = partial(connect, factory, check=False)
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(JobctlCollector(factory, config))
    try:
        httpd, thread = start_http_server(port, addr=host, registry=collectors)
    except OSError as exc:
        raise JobctlError(f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # worker processes forked by the supervisor must not hold the listening socket open
    os.register_at_fork(after_in_child=httpd.socket.close)
    return MetricsServer(httpd, thread)
