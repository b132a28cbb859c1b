"""The middlewares around every job attempt of a worker, in their order."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import statsd_metrics
from .base import Chain, added
from .eventlog import EventLog
from .hooks import JobHooks
from .retries import Retries
from .rq_compat import RqCallbacks

if TYPE_CHECKING:
    import redis

    from ..config.queues import QueueConfig


def for_worker(log: logging.Logger, queues: dict[str, QueueConfig], connection: redis.Redis) -> Chain:
    """The retry policy first (its verdict is the outcome the others hear), RQ's callbacks, @job's
    hooks, the middlewares the job modules added, StatsD if configured, and the log line last
    (after every hook, as the outcome's last word)."""
    sender = statsd_metrics.configured()
    senders = [sender] if sender else []
    return Chain(
        [Retries(queues, log), RqCallbacks(connection, log), JobHooks(), *added(), *senders, EventLog(log)], log
    )
