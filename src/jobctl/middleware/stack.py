"""The middlewares around every job attempt of a worker, in their order."""

from __future__ import annotations

import logging

from ..config.settings import StatsdTarget
from .base import Chain, Middlewares, middlewares
from .hooks import JobHooks
from .statsd_metrics import StatsdSender


def for_worker(log: logging.Logger, statsd: StatsdTarget | None, added: Middlewares = middlewares) -> Chain:
    """@job's hooks first, then the middlewares the job modules added, then StatsD if given."""
    senders = (StatsdSender(statsd),) if statsd else ()
    return Chain([JobHooks(), *added, *senders], log, instant=senders)
