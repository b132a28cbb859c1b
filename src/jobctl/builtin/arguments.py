"""Checks of job arguments, which arrive from JSON payloads and command lines (`-k top_n=3`)."""

from __future__ import annotations

from .. import PermanentError


def whole_number(name: str, value: object, minimum: int = 0) -> int:
    """The value as an int (a numeric string is accepted); PermanentError if it is not one."""
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise PermanentError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return number
