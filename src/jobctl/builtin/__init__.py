"""The built-in jobs. Importing this package registers them."""

from ..errors import PermanentError
from ..registry import job


def _not_yet(name: str):
    def run(*args, **kwargs):
        raise PermanentError(f"built-in job {name!r} is not implemented yet")

    run.__name__ = name
    return run


for _name, _queue in [
    ("channel_sync", "default"),
    ("analytics", "analytics"),
    ("recommendations", "recommendations"),
    ("notifications", "notifications"),
    ("visualize", "default"),
    ("import", "default"),
    ("upload", "default"),
]:
    job(_name, queue=_queue)(_not_yet(_name))
