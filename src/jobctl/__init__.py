"""jobctl: a command-line job runner over RQ and Redis.

The public API for job authors:

    from jobctl import job, progress, PermanentError

    @job("resize_image", queue="default", max_retries=3, timeout="2m")
    def resize_image(path: str, width: int = 800) -> dict:
        progress(50, "resizing")
        ...
"""

from .context import progress
from .errors import PermanentError
from .registry import job

__all__ = ["job", "progress", "PermanentError"]
__version__ = "0.1.0"
