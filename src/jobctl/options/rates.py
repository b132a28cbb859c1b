"""Rates: "10/s", "600/m", "3/10s" (rate_limit of @job and queue.yml; enforced by config/limits.py
and lua/lib.lua)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .durations import parse_duration

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h|d|sec|second|min|minute|hour|day|\d+(?:\.\d+)?\s*(?:ms|s|m|h|d))\s*$")
_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


@dataclass(frozen=True)
class Rate:
    count: int
    period: float  # seconds
    text: str

    def __str__(self) -> str:
        return self.text


def parse_rate(value: object) -> Rate:
    """A rate: "10/s", "600/m", "1000/h", "5/d" or "3/10s"; raises ValueError."""
    if not isinstance(value, str) or not (match := _RATE.match(value)) or int(match.group(1)) < 1:
        raise ValueError(f"expected a rate like 10/s, 600/m or 1000/h, got {value!r}")
    unit = match.group(2)
    period = _PERIODS[unit] if unit in _PERIODS else parse_duration(unit.replace(" ", ""))
    if period <= 0:
        raise ValueError(f"expected a rate over a period longer than zero, got {value!r}")
    return Rate(int(match.group(1)), float(period), value.strip())
