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

_subscriptions: dict[str, list[str]] = {}  # event -> handler job names, in registration order


def on(event: str, *, name: str | None = None, **options: Any) -> Callable[[_F], _F]:
    """Subscribe a function to `event`; it runs as the job `<event>:<function name>` (or `name`)
    with the emitted payload as its one argument. `options` are @job's (queue, max_retries,
    timeout, backoff, hooks, limits...)."""
    if not isinstance(event, str) or not event or any(c.isspace() for c in event):
        raise ValueError(f"an event name is a non-empty string without spaces, got {event!r}")

    def subscribe(func: _F) -> _F:
        job_name = name or f"{event}:{func.__name__}"
        job(job_name, **options)(func)
        handlers = _subscriptions.setdefault(event, [])
        if job_name not in handlers:
            handlers.append(job_name)
        return func

    return subscribe


def subscriptions() -> dict[str, list[str]]:
    """Every event and its handler job names, events sorted by name."""
    return {event: list(handlers) for event, handlers in sorted(_subscriptions.items())}


def handlers_of(event: str) -> list[str]:
    handlers = _subscriptions.get(event)
    if not handlers:
        known = ", ".join(sorted(_subscriptions)) or "none"
        raise UnknownEvent(f"no handler subscribes to event {event!r} (events with handlers: {known})")
    return list(handlers)


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
