"""What the command modules share: where output goes, the option checks several commands make,
and shell completion.

Rich is imported when something is first printed, not when the CLI is imported: `jobctl --help`
and shell completion never load it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

import typer

from ..config.settings import DEFAULT_CONFIG, Settings
from ..errors import JobctlError, UsageError
from ..options.durations import parse_duration
from ..terminal import printable

if TYPE_CHECKING:
    from rich.console import Console

    from ..config.queues import QueueConfig


# --- output ------------------------------------------------------------------------------------


@cache
def console() -> Console:
    """Standard output: ids, tables, JSON. markup=False, emoji=False: ids, arguments, errors and
    progress messages are data, never Rich markup or :emoji: codes."""
    from rich.console import Console

    out = Console(markup=False, emoji=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # piped or logged: the terminal's width where there is one (stderr), else a fixed 120 columns
        out = Console(markup=False, emoji=False, width=os.get_terminal_size(2).columns if sys.stderr.isatty() else 120)
    return out


@cache
def errors() -> Console:
    """Standard error, for errors: never silenced by --quiet."""
    from rich.console import Console

    return Console(stderr=True, markup=False, emoji=False)


def notes(settings: Settings) -> Console:
    """Where progress and notes go: stderr, silent with --quiet."""
    from rich.console import Console

    return Console(stderr=True, quiet=settings.quiet, markup=False, emoji=False)


def say(text: str, *, soft_wrap: bool = False) -> None:
    """One line of the command's output, printed as it is (no highlighting), but for control
    characters, escaped: it may hold a job's name or a record's id (terminal.printable)."""
    console().print(printable(text), highlight=False, soft_wrap=soft_wrap)


def say_lines(lines: Iterable[str]) -> None:
    """Lines of the command's output, control characters escaped as by `say`, written at once
    rather than a Rich print each (about a millisecond a line: requeue-dead may list millions)."""
    sys.stdout.write("".join(printable(line) + "\n" for line in lines))


def print_plain(text: str) -> None:
    """A line known to be plain text (a job id: letters, digits, '_', '-', '.', ':'), printed as
    Rich would print it, without importing Rich: `enqueue` prints nothing else."""
    sys.stdout.write(text + "\n")


def fail(message: str) -> None:
    """An error line, `jobctl: <message>`, on stderr (control characters escaped, as by `say`);
    the command decides the exit status."""
    errors().print(printable(f"jobctl: {message}"), highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_json_list(head: dict[str, Any], key: str, items: Iterable[Any]) -> None:
    """One JSON object: `head`'s keys, then `key` with the list of `items`, each written as it
    comes, so that the list is never held whole."""
    sys.stdout.write(json.dumps(head, default=str)[:-1] + (", " if head else "") + json.dumps(key) + ": [")
    for index, item in enumerate(items):
        sys.stdout.write(("\n  " if index == 0 else ",\n  ") + json.dumps(item, default=str))
    sys.stdout.write("\n]}\n")


# --- option checks -----------------------------------------------------------------------------


def duration_option(option: str, text: str) -> float:
    """Seconds of a duration option (30s, 5m, 2h, 7d); UsageError naming the option otherwise."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None


def configured_queues(settings: Settings, names: list[str], where: str) -> list[QueueConfig]:
    """The queue.yml settings of the queues named (by an option or a command: `where`);
    ConfigError naming `where` and the configured queues for a queue that is not configured."""
    return [settings.queues.get(name, where=where) for name in names]


# --- shell completion: from queue.yml and the job catalogue, without Redis --------------------


def complete_queue(ctx: typer.Context, incomplete: str) -> list[str]:
    """Queue names from queue.yml (the --config in effect on the command line being completed)."""
    # imported here, not at start-up: only this command needs it
    from ..config.queues import load_queues

    try:
        names = load_queues(ctx.find_root().params.get("config") or DEFAULT_CONFIG).queues
    except JobctlError:
        return []
    return [name for name in names if name.startswith(incomplete)]


def complete_job(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Registered job names (built-in and --jobs modules), each with its queue as help."""
    # imported here, not at start-up: only this command needs it
    from ..jobs import catalogue

    try:
        catalogue.load(ctx.find_root().params.get("jobs"))
    except JobctlError:
        return []
    return [(spec.name, f"queue {spec.queue}") for spec in catalogue.all_jobs() if spec.name.startswith(incomplete)]
