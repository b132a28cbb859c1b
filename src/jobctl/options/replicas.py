"""Enqueues acknowledged by replicas: JOBCTL_ENQUEUE_REPLICAS=N makes every enqueue wait, after its
script, until N replicas of the master that stored it have it (Redis's WAIT, on the connection
that wrote), at most JOBCTL_ENQUEUE_REPLICAS_TIMEOUT (a duration, 1s by default). Redis
replicates asynchronously: without it, a job whose enqueue returned may be lost when its master
fails before a replica has it. The settings (config/settings.py) read both once per process and
set them here (store/transitions.py reads them)."""

from typing import NamedTuple

from .durations import parse_duration

DEFAULT_TIMEOUT = 1.0


class Acknowledged(NamedTuple):
    """How many replicas must have an enqueue (0: none, no WAIT), and for how long to wait."""

    replicas: int = 0
    timeout: float = DEFAULT_TIMEOUT


_wanted = Acknowledged()


def parse_replicas(text: str) -> int:
    """A whole number of replicas, 0 or more; raises ValueError."""
    if not text.strip().isdigit():
        raise ValueError(f"expected a whole number of replicas (0 for none), got {text!r}")
    return int(text)


def parse_timeout(text: str) -> float:
    """A duration above 0 (1s, 500ms); raises ValueError."""
    seconds = parse_duration(text)
    if not seconds > 0:
        raise ValueError(f"expected a duration above 0 such as 1s or 500ms, got {text!r}")
    return seconds


def set_wanted(wanted: Acknowledged) -> None:
    global _wanted
    _wanted = wanted


def wanted() -> Acknowledged:
    """The process's setting, as the settings set it (none until they do)."""
    return _wanted
