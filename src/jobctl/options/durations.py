"""Durations as people write them in config and on the command line: 500ms, 10s, 5m, 2h, 1d, 30."""

import math
import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")

EXPECTED = "a duration like 500ms, 10s, 5m, 2h, 1d or a number of seconds"
MAX_SECONDS = 100 * 365 * 86400.0  # a century: longer is a typo, and overflows date arithmetic


def parse_duration(value: object) -> float:
    """Return the duration in seconds; raise ValueError saying what was expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected {EXPECTED}, got {value!r}")
    seconds = None
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected {EXPECTED}, got a negative number {value!r}")
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            seconds = float(number) * _UNITS[unit or "s"]
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"expected {EXPECTED}, got {value!r}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"expected {EXPECTED} of at most 100 years, got {value!r}")
    return seconds


def format_exact(seconds: float) -> str:
    """The shortest exact spelling parse_duration reads back: 1500ms, 90s, 5m, 30d, 0s."""
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    whole = milliseconds // 1000
    for unit in ("w", "d", "h", "m"):
        if whole and whole % _UNITS[unit] == 0:
            return f"{whole // _UNITS[unit]}{unit}"
    return f"{whole}s"


def format_duration(seconds: float | None) -> str:
    """The short human form used in tables: 850ms, 12.3s, 4m05s, 2h10m, 3d4h ('-': unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"
