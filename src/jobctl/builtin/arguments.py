"""Checks of job arguments, which arrive from JSON payloads and command lines (`-k top_n=3`)."""

from __future__ import annotations

from contextlib import suppress
from typing import SupportsIndex, SupportsInt

from .. import PermanentError


def whole_number(name: str, value: object, minimum: int = 0) -> int:
    """The value as an int (a numeric string is accepted); PermanentError if it is not one."""
    number = None
    # what int() converts, less bool and float (True and 2.5 are not whole numbers here)
    if isinstance(value, (str, bytes, bytearray, SupportsInt, SupportsIndex)) and not isinstance(value, (bool, float)):
        with suppress(TypeError, ValueError):
            number = int(value)
    if number is None or number < minimum:
        raise PermanentError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return number
