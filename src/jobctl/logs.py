"""Log lines of the long-running processes (workers, supervisor, scheduler).

Plain readable lines by default; with `--log-format json` (or JOBCTL_LOG_FORMAT=json) one JSON
object per line, for log shippers. Call sites log an event once and get both:

    logs.event(log, "job.finished", "%s %s [%s] finished in %.3fs", name, job_id, queue, seconds,
               job_id=job_id, job=name, queue=queue, duration=seconds, outcome="finished")

prints `12:00:01 INFO  add 3f2a... [default] finished in 0.012s` in plain form and
`{"time": "...", "level": "info", "event": "job.finished", "job_id": "3f2a...", "job": "add",
"queue": "default", "duration": 0.012, "outcome": "finished", "message": "add 3f2a... ..."}`
in JSON form. Ordinary `log.info(...)` lines appear in JSON as event "log".
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from .terminal import printable

LOGGER_NAME = "jobctl"
FORMATS = ("plain", "json")
FIELDS = "jobctl_fields"  # the LogRecord attribute that carries an event's name and fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            **getattr(record, FIELDS, {"event": "log"}),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class PlainFormatter(logging.Formatter):
    """Readable lines, with the control characters of what jobs control (their names, error
    messages, tracebacks) escaped: they go to an operator's terminal (terminal.printable)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), lines=True)


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else PlainFormatter()


def setup(verbose: bool = False, fmt: str | None = None) -> logging.Logger:
    """Configure the jobctl logger on stderr. `fmt` is "plain" or "json"; None keeps the format
    already set up (plain the first time), so a later `setup(verbose)` does not undo the global
    --log-format option."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected plain or json")
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler(sys.stderr))
        logger.propagate = False
        fmt = fmt or "plain"
        # redis-py's cluster client logs each failed look for the nodes at ERROR; with no handler
        # of the application's, Python's last resort printed each, bare, several a second during
        # an outage that jobctl reports in one line of its own (connection.RedisOutage)
        logging.getLogger("redis").addHandler(logging.NullHandler())
    if fmt is not None:
        for handler in logger.handlers:
            handler.setFormatter(_formatter(fmt))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logger


def event(
    logger: logging.Logger, name: str, message: str, *args: object, level: int = logging.INFO, **fields: Any
) -> None:
    """Log one event: `message % args` is the plain line; `name` and `fields` (job_id, job,
    queue, duration, outcome, ...) are the JSON object's keys."""
    logger.log(level, message, *args, extra={FIELDS: {"event": name, **fields}})


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
