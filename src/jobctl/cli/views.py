"""Rich renderings of what the commands print: the data API's records (`status`, `stats`,
`demo`), the configuration (`config`), the registered jobs (`jobs`) and search hits (`search`);
one job's (`show`, `logs --follow`, `enqueue --wait` and `--from`) are in jobviews.py. The CLI
calls these and prints what they return.

Every text shown here may come from a job or a record another tool wrote: it reaches the
terminal only through `data` (one line) or `lines` (several), which escape its control
characters (terminal.printable) and never read it as markup, and every table is a DataTable,
whose text cells go through `data`.
"""

from __future__ import annotations

import io
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..api.formats import ago, parameters, percent, progress_text, size, when
from ..jobs.signatures import described
from ..options.durations import format_duration
from ..store.jobdata import STATES, JobView
from ..terminal import printable

if TYPE_CHECKING:
    from rich.style import StyleType

    from ..api.jobstats import Stats
    from ..api.reads import Counters, Overview
    from ..config.queues import RecurringEntry
    from ..jobs.catalogue import JobSpec

STATE_STYLE = {
    "queued": "cyan",
    "scheduled": "blue",
    "deferred": "magenta",
    "started": "yellow",
    "finished": "green",
    "dead": "red",
    "canceled": "dim",
    "busy": "yellow",
    "idle": "green",
    "gone": "red",
    "retried": "yellow",  # execution outcomes, as job tracking records them
}


def data(value: object, style: str = "", **options: Any) -> Text:
    """One line of text a job or a record controls, its control characters escaped."""
    return Text(printable(str(value)), style=style, **options)


def lines(text: str, style: str = "") -> Text:
    """Several lines of such text (a traceback, output): line breaks kept, the rest escaped."""
    return Text(printable(text, lines=True), style=style)


class DataTable(Table):
    """A table whose text cells are data (see `data`); other renderables are added as they are."""

    def add_row(self, *cells: RenderableType | None, style: StyleType | None = None, end_section: bool = False) -> None:
        super().add_row(
            *(data(cell) if isinstance(cell, str) else cell for cell in cells), style=style, end_section=end_section
        )


def state_text(state: str) -> Text:
    return data(state, style=STATE_STYLE.get(state, ""))


_NEVER_CUT = ("queue", "job", "id", "pid", "worker", "entry")
_SHRINKING = ("error", "last error", "parameters", "progress")  # cut with an ellipsis rather than wrapped
SHRINKING_WIDTH = 48


def table(title: str, *columns: str, **options: Any) -> Table:
    """The tables' common look: compact, so that status fits an 80-column terminal."""
    grid = DataTable(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1), **options
    )
    for column in columns:
        grid.add_column(
            column,
            min_width=len(column),
            no_wrap=column in _NEVER_CUT,
            max_width=SHRINKING_WIDTH if column in _SHRINKING else None,
        )
    return grid


def fit(grid: Table, width: int | None, less_important: tuple[str, ...]) -> Table:
    """Leave out the `less_important` columns, in that order, while `grid` is wider than `width`
    columns, so that what is left (ids, pids, names) is shown whole rather than cut."""
    if width is None:
        return grid
    measuring = Console(width=width, file=io.StringIO(), markup=False, emoji=False)  # as the output consoles
    for name in less_important:
        if Measurement.get(measuring, measuring.options.update_width(10_000), grid).maximum <= width:
            break
        grid.columns = [column for column in grid.columns if column.header != name]
    return grid


def status_tables(view: Overview, failures: int = 5, width: int | None = None) -> Group:
    """Queues (counts per state, then activity), workers grouped by host with their current job
    and its progress, the latest failures, and the scheduler's next runs once a scheduler runs;
    each table narrowed to `width` columns by leaving out its less important columns."""
    counts = table("Queues", "queue")
    counts.add_column("workers", justify="right")
    for state in STATES:
        counts.add_column(state, justify="right", style=STATE_STYLE[state])
    activity = table("Queue activity", "queue", "prio", "weight", "done/min", "fail/min", "err %", "avg run", "latency")
    for q in view.queues:
        elastic = f" of {q.worker_range}" if q.worker_range else ""
        counts.add_row(q.name, f"{q.busy}/{q.workers}{elastic}", *(str(q.counts[s]) for s in STATES))
        activity.add_row(
            q.name + (" (paused)" if q.paused else ""),
            str(q.priority),
            str(q.weight or "-"),
            str(q.processed_last_minute - q.failed_last_minute),
            str(q.failed_last_minute),
            percent(q.totals.error_rate),
            format_duration(q.totals.avg_run_seconds),
            format_duration(q.latency_seconds),
        )
    parts: list[RenderableType] = [
        fit(counts, width, ("canceled", "deferred", "scheduled", "finished")),
        fit(activity, width, ("weight", "prio", "avg run", "err %")),
        *suspension_warning(view),
        *unserved_warnings(view),
        fit(workers_table(view), width, ("cpu", "rss", "up", "done", "fail", "beat", "host", "progress", "state")),
    ]
    if view.failures:
        parts.append(
            fit(failures_table(view.failures[:failures], view.taken_at), width, ("attempt", "queue", "when", "outcome"))
        )
    if view.breakers:
        parts.append(fit(breakers_table(view), width, ("opens", "trial")))
    if view.scheduler:
        parts.append(fit(scheduler_table(view), width, ("in", "last run")))
    return Group(*parts)


BREAKER_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def breakers_table(view: Overview) -> Table:
    """queue.yml's circuit breakers: state, failures in the window, until when open."""
    shown = table("Circuit breakers", "breaker", "state", "failures", "open for", "opens", "trial")
    for b in view.breakers:
        left = format_duration(max(b.open_until - view.taken_at, 0.0)) if b.open_until is not None else "-"
        shown.add_row(
            printable(b.label),
            Text(b.state.replace("_", "-"), style=BREAKER_STYLE[b.state]),
            f"{b.failures}/{b.threshold}",
            left,
            str(b.opens),
            printable(b.trial) if b.trial else "-",
        )
    return shown


def suspension_warning(view: Overview) -> list[Text]:
    if not view.suspended:
        return []
    return [Text("suspended: workers take no new job (`rq suspend`; `rq resume` to go on)", style="bold yellow")]


def unserved_warnings(view: Overview) -> list[Text]:
    return [
        Text(
            f"warning: {q.waiting} job(s) waiting on queue {q.name!r}, which no worker serves (it is not in queue.yml)",
            style="bold yellow",
        )
        for q in view.unserved
    ]


def workers_table(view: Overview) -> Table:
    grid = table(
        "Workers", "host", "pid", "queue", "state", "job", "progress", "done", "fail", "cpu", "rss", "up", "beat"
    )
    running = {j.id: j for j in view.running}
    ordered = sorted(view.workers, key=lambda w: (w.host, w.pid or 0))
    for index, w in enumerate(ordered):
        first_of_host = index == 0 or ordered[index - 1].host != w.host
        last_of_host = index == len(ordered) - 1 or ordered[index + 1].host != w.host
        # one line per job in flight (a worker with `concurrency` > 1 may run several)
        in_flight: list[JobView | None] = [running[job_id] for job_id in w.jobs if job_id in running] or [None]
        for line, job in enumerate(in_flight):
            first, last = line == 0, line == len(in_flight) - 1
            grid.add_row(
                w.host if first_of_host and first else "",
                str(w.pid or "-") if first else "",
                ",".join(w.queues) if first else "",
                state_text(w.state) if first else "",
                f"{job.job} {job.id[:8]}" if job else "-",
                progress_cell(job) if job else "-",
                *(
                    (
                        str(w.done),
                        str(w.failed),
                        "-" if w.cpu_percent is None else f"{w.cpu_percent:.0f}%",
                        size(w.rss_bytes),
                        format_duration(view.taken_at - w.birth) if w.birth else "-",
                        ago(w.last_heartbeat, view.taken_at),
                    )
                    if first
                    else ("",) * 6
                ),
                end_section=last_of_host and last,
            )
    if not view.workers:
        grid.caption = "no workers running: start them with `jobctl work`"
    return grid


def progress_cell(job: JobView) -> RenderableType:
    if job.progress is None:
        return Text("running", style="yellow")
    cell = DataTable.grid(padding=(0, 1))
    cell.add_row(
        ProgressBar(total=100, completed=job.progress, width=10), data(progress_text(job), overflow="ellipsis")
    )
    return cell


def failures_table(failures: list[dict[str, Any]], now: float) -> Table:
    grid = table("Recent failures", "when", "job", "id", "queue", "attempt", "outcome", "error")
    for entry in failures:
        grid.add_row(
            ago(entry.get("at"), now),
            entry.get("job", "-"),
            str(entry.get("id", ""))[:8],
            entry.get("queue", "-"),
            str(entry.get("attempt", "-")),
            state_text(entry.get("outcome", "-")),
            _error_cell(entry.get("error")),
        )
    return grid


def scheduler_table(view: Overview) -> Table:
    scheduler = view.scheduler
    assert scheduler is not None  # shown once a scheduler has run
    grid = table("Scheduler", "entry", "next run", "in", "last run")
    for entry in scheduler.entries:
        grid.add_row(
            entry.entry,
            when(entry.next_run),
            format_duration(None if entry.next_run is None else max(0.0, entry.next_run - view.taken_at)),
            when(entry.last_run),
        )
    grid.caption = (
        "no scheduler running"
        if scheduler.heartbeat is None
        else f"last pass {ago(scheduler.heartbeat, view.taken_at)}"
    )
    return grid


@contextmanager
def ctrl_c() -> Iterator[threading.Event]:
    """SIGINT as an event that a waiting loop checks between two reads, instead of a
    KeyboardInterrupt: raised anywhere, it could land inside Rich's refresh or a Redis reply and
    leave the command hung or killed by the signal under load (tests/test_ids.py's Ctrl-C test)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class KeyPresses:
    """Key presses from the terminal, one at a time (cbreak mode, Ctrl-C read as a key rather
    than sent as SIGINT) and without blocking; the terminal's settings are restored on exit.
    Without a terminal, waiting is just sleeping."""

    def __enter__(self) -> KeyPresses:
        self.fd = sys.stdin.fileno() if sys.stdin.isatty() else None
        if self.fd is not None:
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[3] &= ~termios.ISIG  # local modes: Ctrl-C arrives as the key \x03
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait(self, seconds: float, stop: threading.Event) -> str:
        """What was typed within `seconds` ('' if nothing); returns as soon as a key is pressed."""
        if self.fd is None:
            stop.wait(seconds)
            return ""
        ready, _, _ = select.select([self.fd], [], [], seconds)
        return os.read(self.fd, 64).decode(errors="replace") if ready else ""


def live_status(read: Callable[[], Overview], console: Console, interval: float) -> None:
    """The live view: redrawn in place every `interval` seconds on the terminal's alternate
    screen, cropped to its height, until `q` or Ctrl-C (a SIGINT from elsewhere too)."""
    from rich.live import Live  # only the live view needs it

    def frame() -> Group:
        view = read()
        title = Text.assemble(("jobctl status", "bold"), f"  {when(view.taken_at)}  every {interval:g}s  q to quit")
        return Group(title, status_tables(view, width=console.width))

    with (
        ctrl_c() as stop,
        KeyPresses() as keys,
        Live(frame(), console=console, screen=True, auto_refresh=False, vertical_overflow="crop") as screen,
    ):
        while not stop.is_set():
            typed = keys.wait(interval, stop).lower()
            if "q" in typed or "\x03" in typed or stop.is_set():
                return
            screen.update(frame(), refresh=True)


def stats_tables(stats: Stats, recent: int = 10) -> Group:
    parts = []
    columns = ("runs", "finished", "failed", "retries", "dead", "error rate")
    if stats.queues:
        queues = table("Queues", "queue", *columns, "avg run", "max run", "last run", "last error")
        for q in stats.queues:
            t = q.totals
            queues.add_row(
                q.name,
                *_counter_cells(t),
                format_duration(t.avg_run_seconds),
                format_duration(t.max_run_seconds),
                ago(t.last_run_at),
                _error_cell(t.last_error),
            )
        parts.append(queues)
    jobs = table("Job types", "job", *columns, "p50", "p95", "max run", "last run", "last error")
    for j in stats.jobs:
        t = j.totals
        jobs.add_row(
            j.name,
            *_counter_cells(t),
            format_duration(j.percentile(0.5)),
            format_duration(j.percentile(0.95)),
            format_duration(t.max_run_seconds),
            ago(t.last_run_at),
            _error_cell(t.last_error),
        )
    if not stats.jobs:
        jobs.caption = "no executions recorded yet"
    parts.append(jobs)
    executions = sorted((run for j in stats.jobs for run in j.recent), key=lambda run: run.get("at") or 0, reverse=True)
    if executions:
        grid = table(
            "Recent executions", "when", "job", "id", "queue", "attempt", "outcome", "ran", "parameters", "error"
        )
        for run in executions[:recent]:
            grid.add_row(
                ago(run.get("at")),
                run.get("job", "-"),
                str(run.get("id", ""))[:8],
                run.get("queue", "-"),
                str(run.get("attempt", "-")),
                state_text(run.get("outcome", "-")),
                format_duration(run.get("run_seconds")),
                data(parameters(run.get("args") or [], run.get("kwargs") or {}), overflow="ellipsis", no_wrap=True),
                _error_cell(run.get("error")),
            )
        parts.append(grid)
    return Group(*parts)


def _counter_cells(t: Counters) -> list[str]:
    return [str(t.runs), str(t.successes), str(t.failures), str(t.retries), str(t.dead), percent(t.error_rate)]


def _error_cell(error: str | None) -> Text:
    return data(error or "-", style="red" if error else "", overflow="ellipsis", no_wrap=True)


def recurring_table(rows: list[tuple[RecurringEntry, list[datetime]]]) -> Table:
    grid = table("Recurring jobs", "entry", "job", "queue", "schedule", "next runs")
    for entry, runs in rows:
        schedule = entry.schedule.describe() + ("" if entry.enabled else " (disabled)")
        grid.add_row(entry.name, entry.job, entry.queue, schedule, "\n".join(when(t.timestamp()) for t in runs))
    return grid


# --- what is configured and registered, and search hits ------------------------------------------


def config_tables(effective: dict[str, Any]) -> list[Table]:
    """`config`: the general settings, every queue's settings, and the recurring entries (if any),
    each value with where it came from (configview.effective)."""
    general = DataTable(title="Configuration", title_justify="left")
    for column in ("setting", "value", "source"):
        general.add_column(column)
    for key, entry in effective.items():
        if key in ("queues", "recurring_entries"):
            continue
        value = "-" if entry["value"] is None else entry["value"]
        if entry.get("exists") is False:
            value += " (absent)"
        general.add_row(key, value, entry["source"])
    queues = DataTable(title="Queues", title_justify="left")
    for column in ("queue", "setting", "value", "source"):
        queues.add_column(column)
    for queue in effective["queues"]:
        for index, (key, entry) in enumerate(queue["settings"].items()):
            queues.add_row(
                queue["name"] if index == 0 else "",
                key,
                entry["text"],
                entry["source"],
                end_section=index == len(queue["settings"]) - 1,
            )
    if not effective["recurring_entries"]:
        return [general, queues]
    recurring = DataTable(title="Recurring entries", title_justify="left")
    for column in ("name", "job", "queue", "schedule", "timezone", "enabled"):
        recurring.add_column(column)
    for e in effective["recurring_entries"]:
        recurring.add_row(
            e["name"], e["job"], e["queue"], e["schedule"], e["timezone"], "yes" if e["enabled"] else "no"
        )
    return [general, queues, recurring]


def registered_jobs(specs: list[JobSpec], subscriptions: dict[str, list[str]]) -> list[dict[str, Any]]:
    """`jobs --json`: each registered job with its queue, signature, module and the events it handles."""
    events_of = _events_of(subscriptions)
    return [
        {
            "name": s.name,
            "queue": s.queue,
            "signature": described(s),
            "module": s.module,
            "events": events_of.get(s.name, []),
        }
        for s in specs
    ]


def jobs_tables(specs: list[JobSpec], subscriptions: dict[str, list[str]]) -> list[Table]:
    """`jobs`: the registered jobs, and the event subscriptions when there are some."""
    grid = DataTable(title="Registered jobs", title_justify="left")
    for column in ("job", "queue", "signature", "module"):
        grid.add_column(column)
    for s in specs:
        grid.add_row(s.name, s.queue, described(s), s.module)
    if not _events_of(subscriptions):
        return [grid]
    queue_of = {s.name: s.queue for s in specs}
    handlers = DataTable(title="Event subscriptions (jobctl emit EVENT)", title_justify="left")
    for column in ("event", "handler job", "queue"):
        handlers.add_column(column)
    for event, names in subscriptions.items():
        for name in names:
            handlers.add_row(event, name, queue_of[name])
    return [grid, handlers]


def _events_of(subscriptions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Handler job name -> the events it is subscribed to."""
    events_of: dict[str, list[str]] = {}
    for event, handlers in subscriptions.items():
        for handler in handlers:
            events_of.setdefault(handler, []).append(event)
    return events_of


def search_table(query: str, hits: list[dict[str, Any]]) -> Table:
    """`search`: the best matching chunks, their score, document and the start of their text."""
    grid = DataTable(title=data(f"Best matches for {query!r}"), title_justify="left")
    for column in ("score", "document", "chunk", "text"):
        grid.add_column(column)
    for hit in hits:
        grid.add_row(f"{hit['score']:.3f}", hit["document"], str(hit["chunk_index"]), hit["text"][:200])
    return grid
