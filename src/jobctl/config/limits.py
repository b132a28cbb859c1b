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

Where the limits come from: each worker passes the limits of the code and queue.yml it runs to
the fetch and outcome scripts, rather than each job's record carrying them from enqueue. So a
limit added or changed in a deploy holds at once for the jobs already waiting (the usual reason
to add one is a backlog hammering an API), queue.yml's rate_limit needs no copy in every job,
jobs enqueued by RQ's own API obey their queue's, and a fleet without limits pays no Redis
command for them. All hosts are expected to run the same code and queue.yml.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..jobs import catalogue
from ..options.rates import Rate
from ..store import keys

if TYPE_CHECKING:
    from .queues import QueueConfig


def limits_of(queues: Iterable[QueueConfig]) -> dict[str, str]:
    """The limits of every registered job and of the given queues, as lua/lib.lua's `limits`
    table reads them: "count period_seconds" for a rate, N for max_concurrency; none: left out."""
    fields: dict[str, str] = {}
    for spec in catalogue.all_jobs():
        if spec.rate_limit:
            fields[keys.job_rate_limit(spec.name)] = _rate_field(spec.rate_limit)
        if spec.max_concurrency:
            fields[keys.job_concurrency_limit(spec.name)] = str(spec.max_concurrency)
    for queue in queues:
        if queue.rate_limit:
            fields[keys.queue_rate_limit(queue.name)] = _rate_field(queue.rate_limit)
    return fields


def _rate_field(rate: Rate) -> str:
    return f"{rate.count} {rate.period:g}"
