"""Backoffs between a failed attempt and the next: a name (exponential, linear, fixed) or a list
of durations, and the delay each gives."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .durations import parse_duration

BACKOFFS = ("exponential", "linear", "fixed")
EXPECTED = "exponential, linear, fixed or a list of durations like [10s, 1m, 10m]"

Backoff = str | tuple[float, ...] | Callable[[int, BaseException], float]


def parse_backoff(value: Any) -> str | tuple[float, ...]:
    """A backoff name, or a list of durations (the last one repeats); raises ValueError."""
    if isinstance(value, str) and value in BACKOFFS:
        return value
    if isinstance(value, (list, tuple)) and value:
        return tuple(parse_duration(v) for v in value)
    raise ValueError(f"expected {EXPECTED}, got {value!r}")


def backoff_delay(backoff: str | tuple[float, ...], base: float, retry_number: int, jitter: bool = False) -> float:
    """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
    if isinstance(backoff, tuple):
        delay = backoff[min(retry_number, len(backoff)) - 1]
    elif backoff == "exponential":
        delay = base * 2 ** (retry_number - 1)
    elif backoff == "linear":
        delay = base * retry_number
    else:
        delay = base
    if jitter:
        # up to +25%, so that jobs that failed together do not retry in lockstep
        delay *= 1 + random.random() * 0.25
    return delay
