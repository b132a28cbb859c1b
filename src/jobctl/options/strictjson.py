"""Job arguments as strict JSON: what the command line parses and what every producer accepts.

- Numbers are finite. NaN, Infinity and numbers beyond a float's range (1e999) are not JSON
  numbers (RFC 8259), although Python's json reads and writes them by default: a job given one
  could not store it again (its record, its result), and other tools cannot read it.
- Lists and objects nest at most MAX_DEPTH levels, in job arguments and in the configuration
  files (yamlfile.py). Deeper data makes every reader that recurses (Python's json, PyYAML,
  the renderers) raise RecursionError far from where it came in; refused where it comes in, it
  is one line naming the argument or the file.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100  # levels of lists and objects; Ruby's JSON has the same default (max_nesting)
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels of lists and objects"


class NotStrictJSON(ValueError):
    """Data that is not strict JSON: a non-finite number, or nesting deeper than MAX_DEPTH."""


class TooDeep(NotStrictJSON):
    """Lists and objects nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(TOO_DEEP)


def loads(text: str) -> Any:
    """Parse strict JSON. Raises ValueError: json.JSONDecodeError for what is not JSON at all,
    NotStrictJSON for NaN, Infinity, a number out of range, or nesting beyond MAX_DEPTH."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # nested beyond Python's recursion limit: far beyond MAX_DEPTH
        raise TooDeep from None
    if brackets(text) > MAX_DEPTH:
        check(value)
    return value


def brackets(text: str) -> int:
    """How many lists and objects JSON `text` opens: at least its depth (brackets inside strings
    count too, so a text with at most MAX_DEPTH of them cannot nest too deep)."""
    return text.count("[") + text.count("{")


def check(value: Any) -> None:
    """Raise NotStrictJSON when `value` holds a non-finite float or nests beyond MAX_DEPTH.
    Walks the value without recursion, so that any depth is answered with this error."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise NotStrictJSON(f"{item} is not a JSON number (JSON numbers are finite)")
        if isinstance(item, (list, tuple, dict)):
            if depth == MAX_DEPTH:
                raise TooDeep
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def _refuse_constant(name: str) -> Any:
    raise NotStrictJSON(f"{name} is not a JSON number (JSON numbers are finite)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotStrictJSON(f"{text} is out of range for a JSON number (a 64-bit float)")
    return number
