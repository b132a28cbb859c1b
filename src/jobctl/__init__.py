"""jobctl: a command-line job runner over RQ and Redis.

The public API for applications (see api/client.py, api/jobfunction.py, api/handle.py, testing.py):

    import jobctl
    jobctl.connect()                       # REDIS_URL and queue.yml, as the CLI reads them
    handle = resize_image.enqueue("a.png")  # resize_image.options(queue="bulk").enqueue(...)
    handle.result(timeout=30)              # or: await resize_image.aenqueue(...); await handle.aresult()

The public API for job authors:

    from jobctl import job, on, progress, PermanentError

    @job("resize_image", queue="default", max_retries=3, timeout="2m")
    def resize_image(path: str, width: int = 800) -> dict:
        progress(50, "resizing")
        ...

    @on("user.signup")                     # `jobctl emit user.signup '{"user_id": 42}'`
    def send_welcome(payload: dict) -> None:
        ...

    add_middleware(MyMiddleware())         # a jobctl.Middleware: around every job attempt
    @callback                              # RQ's on_success/on_failure/on_stopped may name it
    def notify(job, connection, result) -> None:
        ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.batches import batch
    from .api.breakers import breaker
    from .api.client import Client, aget, connect, get
    from .api.context import progress
    from .api.decorators import job
    from .api.events import on
    from .api.handle import Handle, Progress
    from .api.jobfunction import AsyncJob, Call, Job, call
    from .errors import (
        ArgumentMismatch,
        BlockingCall,
        BreakerOpen,
        ConfigError,
        DuplicateJob,
        JobCanceled,
        JobFailed,
        JobNotFound,
        NotJSON,
        NotReplicated,
        PermanentError,
        RedisUnavailable,
    )
    from .jobs.catalogue import callback
    from .middleware.base import Middleware, add_middleware

__all__ = [
    "ArgumentMismatch",
    "AsyncJob",
    "BlockingCall",
    "BreakerOpen",
    "Call",
    "Client",
    "ConfigError",
    "DuplicateJob",
    "Handle",
    "Job",
    "JobCanceled",
    "JobFailed",
    "JobNotFound",
    "Middleware",
    "NotJSON",
    "NotReplicated",
    "PermanentError",
    "Progress",
    "RedisUnavailable",
    "add_middleware",
    "aget",
    "batch",
    "breaker",
    "call",
    "callback",
    "connect",
    "get",
    "job",
    "on",
    "progress",
]
__version__ = "0.1.0"

# Each name is imported from its module on first use, not with the package: every `jobctl.x`
# import starts here, and `jobctl --help` has no use for the job catalogue or the job context.
_MODULE_OF = {
    "AsyncJob": "api.jobfunction",
    "Call": "api.jobfunction",
    "Client": "api.client",
    "Job": "api.jobfunction",
    "aget": "api.client",
    "call": "api.jobfunction",
    "connect": "api.client",
    "get": "api.client",
    "batch": "api.batches",
    "progress": "api.context",
    "breaker": "api.breakers",
    "ArgumentMismatch": "errors",
    "BreakerOpen": "errors",
    "BlockingCall": "errors",
    "ConfigError": "errors",
    "DuplicateJob": "errors",
    "JobCanceled": "errors",
    "JobFailed": "errors",
    "JobNotFound": "errors",
    "NotJSON": "errors",
    "NotReplicated": "errors",
    "PermanentError": "errors",
    "RedisUnavailable": "errors",
    "Handle": "api.handle",
    "Progress": "api.handle",
    "on": "api.events",
    "Middleware": "middleware.base",
    "add_middleware": "middleware.base",
    "callback": "jobs.catalogue",
    "job": "api.decorators",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'jobctl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
