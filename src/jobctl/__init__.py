"""jobctl: a command-line job runner over RQ and Redis.

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
"""

from .context import progress
from .errors import PermanentError
from .events import on
from .middleware import Middleware, add_middleware
from .registry import job

__all__ = ["job", "on", "progress", "PermanentError", "Middleware", "add_middleware"]
__version__ = "0.1.0"
