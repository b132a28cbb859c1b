"""Events: `@on("user.signup")` subscribes a function; `jobctl emit user.signup '{...}'` enqueues
one job per subscribed handler, with the payload as its one argument.

Each handler is an ordinary registered job named `<event>:<function name>` (or `name=`), so it
has its own queue, retries, timeout, id and place in `status`, `show` and the dead set: one
handler failing neither blocks nor repeats the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import UnknownEvent
from ..jobs import catalogue
from ..jobs.signatures import check
from .decorators import job
from .producer import Enqueued, enqueue

if TYPE_CHECKING:
    import redis

    from ..config.queues import QueuesConfig

_F = TypeVar("_F", bound=Callable[..., Any])


class Subscriptions:
    """Events -> the job names of their handlers, in the order they subscribed."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[str]] = {}

    def add(self, event: str, job_name: str) -> None:
        handlers = self._handlers.setdefault(event, [])
        if job_name not in handlers:
            handlers.append(job_name)

    def all(self) -> dict[str, list[str]]:
        """Every event and its handler job names, events sorted by name."""
        return {event: list(handlers) for event, handlers in sorted(self._handlers.items())}

    def handlers_of(self, event: str) -> list[str]:
        handlers = self._handlers.get(event)
        if not handlers:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise UnknownEvent(f"no handler subscribes to event {event!r} (events with handlers: {known})")
        return list(handlers)


default_subscriptions = Subscriptions()  # the process's: @on subscribes into it, emit() reads it


def on(event: str, *, name: str | None = None, **options: Any) -> Callable[[_F], _F]:
    """Subscribe a function to `event`; it runs as the job `<event>:<function name>` (or `name`)
    with the emitted payload as its one argument. `options` are @job's (queue, max_retries,
    timeout, backoff, hooks, limits...)."""
    if not isinstance(event, str) or not event or any(c.isspace() for c in event):
        raise ValueError(f"an event name is a non-empty string without spaces, got {event!r}")

    def subscribe(func: _F) -> _F:
        job_name = name or f"{event}:{func.__name__}"
        job(job_name, **options)(func)
        default_subscriptions.add(event, job_name)
        return func

    return subscribe


subscriptions = default_subscriptions.all  # the process's events and their handlers
handlers_of = default_subscriptions.handlers_of


def emit(connection: redis.Redis, config: QueuesConfig, event: str, payload: Any = None) -> list[Enqueued]:
    """Enqueue one job per handler of `event`, each with `payload` ({} when None) as its argument.

    Every handler's queue and signature are checked first, so a misconfigured one enqueues none
    of them. Raises UnknownEvent, ConfigError, ArgumentMismatch (a handler that does not take the
    payload as its one argument) or UsageError (a payload that is not JSON)."""
    handlers = handlers_of(event)
    payload = {} if payload is None else payload
    for job_name in handlers:
        config.get(catalogue.get(job_name).queue, where=f"handler {job_name!r} of event {event!r}")
        check(catalogue.get(job_name), [payload], {})
    return [enqueue(connection, config, job_name, [payload]) for job_name in handlers]
