"""The middlewares around every job attempt of a worker, in their order."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config.settings import StatsdTarget
from .base import Chain, Middlewares, middlewares
from .eventlog import EventLog
from .hooks import JobHooks
from .retries import Retries
from .rq_compat import RqCallbacks
from .statsd_metrics import StatsdSender

if TYPE_CHECKING:
    import redis

    from ..config.queues import QueueConfig


def for_worker(
    log: logging.Logger,
    statsd: StatsdTarget | None,
    queues: dict[str, QueueConfig],
    connection: redis.Redis,
    added: Middlewares = middlewares,
) -> Chain:
    """jobctl's own first: the retry policy (its verdict is the outcome the others hear), RQ's
    callbacks and the log line (after_outcome: it follows every other middleware's calls after
    the attempt); then @job's hooks, the middlewares the job modules added, and StatsD if given."""
    senders = [StatsdSender(statsd)] if statsd else []
    own = [Retries(queues, log), RqCallbacks(connection, log), EventLog(log)]
    return Chain([*own, JobHooks(), *added, *senders], log)
