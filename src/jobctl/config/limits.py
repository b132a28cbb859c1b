"""Rate and concurrency limits, enforced in Redis when a job is fetched (lua/lib.lua, `may_start`).

- `rate_limit` (`@job` or queue.yml): at most N starts per period, across every host: a sliding
  window of start times per job type or queue (keys.rate_window).
- `max_concurrency` (`@job`): at most N running at once, across every host: each running job holds
  a slot (keys.slots) naming its worker; a slot ends with its job's outcome, with recovery of its
  worker, and with its worker's lease (a slot whose worker hash expired counts no more), so a
  worker killed -9 on a host that is gone keeps none.

A job of a type that may not start yet goes to the scheduled set, without using an attempt, for
the moment it may start (rate), or for a short while (concurrency); promotion brings it back.
The worker goes on with the next job, so a limited job type never blocks the rest of its queue.
A queue over its own rate limit is skipped as a whole: its jobs keep their order.

- `breaker` (`@job`, naming one of queue.yml's `breakers:`): a circuit breaker, across every host
  (keys.breaker: a hash in Redis, so every worker sees it open at once). Closed, the failures of
  its jobs (and of `with jobctl.breaker(name):` blocks) that it counts (`on`: by exception class
  name along the MRO; none given: every exception) are kept for `window` (keys.breaker_failures);
  `failures` of them open it, each outcome script deciding atomically with the job's outcome.
  Open, its jobs are not started: they wait in the scheduled set, without using an attempt,
  until `cooldown` is over. Then it is half-open: the first of its jobs to be fetched is its one
  trial, fleet-wide; the trial succeeding closes it, failing opens it for another cool-down. A
  trial is held like a slot: one whose job was recovered, given back or canceled, or whose
  worker's lease lapsed, counts no more, so a worker killed -9 never leaves it half-open for good.

Where the limits come from: each worker passes the limits of the code and queue.yml it runs to
the fetch and outcome scripts, rather than each job's record carrying them from enqueue. So a
limit added or changed in a deploy holds at once for the jobs already waiting (the usual reason
to add one is a backlog hammering an API), queue.yml's rate_limit needs no copy in every job,
jobs enqueued by RQ's own API obey their queue's, and a fleet without limits pays no Redis
command for them. All hosts are expected to run the same code and queue.yml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..jobs import catalogue
from ..options.rates import Rate
from ..store import keys

if TYPE_CHECKING:
    from .queues import BreakerConfig, QueueConfig, QueuesConfig


def limits_of(queues: Iterable[QueueConfig], breakers: Mapping[str, BreakerConfig]) -> dict[str, str]:
    """The limits of every registered job and of the given queues, as lua/lib.lua's `limits`
    table reads them: "count period_seconds" for a rate, N for max_concurrency, a breaker's name
    and its "failures window cooldown"; none: left out. `breakers`: queue.yml's (check_breakers
    has made sure that every breaker a job names is one of them)."""
    fields: dict[str, str] = {}
    for spec in catalogue.all_jobs():
        if spec.rate_limit:
            fields[keys.job_rate_limit(spec.name)] = _rate_field(spec.rate_limit)
        if spec.max_concurrency:
            fields[keys.job_concurrency_limit(spec.name)] = str(spec.max_concurrency)
        if spec.breaker is not None and spec.breaker in breakers:
            fields[keys.job_breaker(spec.name)] = spec.breaker
            fields[keys.breaker_settings(spec.breaker)] = breaker_field(breakers[spec.breaker])
    for queue in queues:
        if queue.rate_limit:
            fields[keys.queue_rate_limit(queue.name)] = _rate_field(queue.rate_limit)
    return fields


def may_hold_back(limits: Mapping[str, str], job_name: str, queue: str) -> bool:
    """Whether one of a worker's `limits` (limits_of) may hold back a job of this name, taken
    from this queue, as it starts (lua/lib.lua's may_start checks them then)."""
    return bool(limits) and any(
        key in limits
        for key in (
            keys.job_concurrency_limit(job_name),
            keys.job_rate_limit(job_name),
            keys.job_breaker(job_name),
            keys.queue_rate_limit(queue),
        )
    )


def _rate_field(rate: Rate) -> str:
    return f"{rate.count} {rate.period:g}"


def breaker_field(breaker: BreakerConfig) -> str:
    """A breaker's limit (keys.breaker_settings): "failures window_seconds cooldown_seconds"."""
    return f"{breaker.failures} {breaker.window!r} {breaker.cooldown!r}"


def check_breakers(config: QueuesConfig) -> None:
    """Raise ConfigError when a registered job names a breaker queue.yml does not declare."""
    for spec in catalogue.all_jobs():
        if spec.breaker is not None and spec.breaker not in config.breakers:
            declared = ", ".join(config.breakers) or "none"
            raise ConfigError(
                f"{config.path}: job {spec.name!r} ({spec.module}): key 'breaker': {spec.breaker!r} is not "
                f"declared under 'breakers:' (declared: {declared})"
            )
