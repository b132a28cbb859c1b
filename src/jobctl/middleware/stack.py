"""The middlewares around every job attempt of a worker, in their order."""

from __future__ import annotations

import logging

from . import statsd_metrics
from .base import Chain, added
from .hooks import JobHooks


def for_worker(log: logging.Logger) -> Chain:
    """@job's hooks first, then the middlewares the job modules added, then StatsD if configured."""
    sender = statsd_metrics.configured()
    senders = (sender,) if sender else ()
    return Chain([JobHooks(), *added(), *senders], log, instant=senders)
