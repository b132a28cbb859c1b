"""Times, durations, sizes, shares, a call's arguments and a job's progress as text: the same
words in the terminal (cli/views.py) and on the dashboard (web/, as template filters)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from ..options.durations import format_duration
from ..store.jobdata import JobView


def when(moment: float | None) -> str:
    if moment is None:
        return "-"
    try:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a number another tool wrote: no date has it
        return f"? ({moment:g})"


def ago(moment: float | None, now: float | None = None) -> str:
    if moment is None:
        return "-"
    return format_duration(max(0.0, (now or time.time()) - moment)) + " ago"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def size(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            break
        count /= 1024
    return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"


def parameters(args: list[Any] | str, kwargs: dict[str, Any]) -> str:
    """A call's arguments as text; `args` a string: job tracking's note that they were not kept."""
    if isinstance(args, str):
        return args
    return ", ".join(
        [json.dumps(a, default=repr) for a in args] + [f"{k}={json.dumps(v, default=repr)}" for k, v in kwargs.items()]
    )


def progress_text(job: JobView) -> str:
    if job.progress is None:
        return "-"
    message = f" {job.progress_message}" if job.progress_message else ""
    return f"{job.progress:.0f}%{message}"
