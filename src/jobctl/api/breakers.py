"""`with jobctl.breaker(name):` — a circuit breaker of queue.yml's `breakers:` around a block.

The breaker is the one jobs attach with `@job(breaker=...)` (config/limits.py says how it opens
and closes): a failure inside the block that the breaker counts is recorded at once; while it
is open, entering the block raises BreakerOpen. Inside a job, let BreakerOpen escape: the worker
defers the job until the breaker may let it run, without using an attempt. When the breaker is
half-open, the first job to enter the block holds its one trial (fleet-wide), and how the block
ends decides. Outside a job (a script, a shell) the block is refused while the breaker is open
and counts its failures, but it never holds the trial: only jobs decide a half-open breaker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import logs
from ..config.limits import breaker_field
from ..errors import BreakerOpen, ConfigError
from ..store.transitions import Transitions
from . import context

if TYPE_CHECKING:
    from .client import Client

# A breaker already counted this failure (its block did): the job's own outcome does not again.
COUNTED = "_jobctl_breaker_counted"


@contextlib.contextmanager
def breaker(name: str, client: Client | None = None, *, optional: bool = False) -> Iterator[None]:
    """Run the block under the breaker `name` (declared in queue.yml). Raises BreakerOpen, and
    does not run the block, while the breaker is open; ConfigError when it is not declared,
    unless `optional` (the block then runs unguarded: code shipped to projects that may not
    declare it, such as the built-in upload job). `client`: outside a job, where the breaker
    lives (default: jobctl.connect()'s)."""
    execution = context.current()
    if client is None:
        # imported here: a job module that only names the breaker needs no Redis client at import
        from .client import connect

        client = execution.client if execution is not None and execution.client is not None else connect()
    config = client.config
    if name not in config.breakers and optional:
        yield
        return
    if name not in config.breakers:
        raise ConfigError(
            f"{config.path}: breaker {name!r} is not declared under 'breakers:' "
            f"(declared: {', '.join(config.breakers) or 'none'})"
        )
    settings = config.breakers[name]
    job_id, worker, queue = (execution.job_id, execution.worker, execution.queue) if execution else ("", "", "")
    transitions = Transitions.of(client.connection)
    until = transitions.breaker_enter(name, breaker_field(settings), job_id, worker, time.time(), queue)
    if until is not None:
        raise BreakerOpen(name, until)
    try:
        yield
    except BaseException as exc:
        counts = settings.counts(exc)
        event = transitions.breaker_record(name, breaker_field(settings), job_id, worker, time.time(), counts, queue)
        if counts:
            setattr(exc, COUNTED, name)
        log_event(logs.get(), event, worker or "a block outside a job")
        raise
    event = transitions.breaker_record(name, breaker_field(settings), job_id, worker, time.time(), False, queue)
    log_event(logs.get(), event, worker or "a block outside a job")


def log_event(log: logging.Logger, event: str, by: str) -> None:
    """One line for a breaker opening or closing (`event`: a breaker script's 'opened NAME' or
    'closed NAME'; '' logs nothing)."""
    if not event:
        return
    what, _, name = event.partition(" ")
    logs.event(
        log,
        f"breaker.{what}",
        "circuit breaker %s %s (%s)",
        name,
        what,
        by,
        level=logging.WARNING if what == "opened" else logging.INFO,
        breaker=name,
        state="open" if what == "opened" else "closed",
    )
