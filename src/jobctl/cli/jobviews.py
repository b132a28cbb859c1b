"""Rich renderings of one job: `show` (its table, tracebacks and dependency tree), `logs --follow`,
the outcome table of `enqueue --wait` and the progress bar of `enqueue --from`. Like views.py,
every text a job controls goes through `data` or `lines`."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..api.formats import progress_text, when
from ..options.durations import format_duration
from ..store.jobdata import JobView
from ..terminal import printable

if TYPE_CHECKING:
    import redis
    from rich.tree import Tree

    from ..api.jobdetail import JobDetail, Relative
    from ..store.joboutput import AttemptOutput

from .views import DataTable, ctrl_c, data, lines, state_text, table


def outcome_text(job: JobView) -> str:
    """One short line: a finished job's result (scalars of a dict result), or why it failed."""
    if job.state != "finished":
        return job.last_error_line or "-"
    if isinstance(job.result, dict):
        return ", ".join(f"{k}={v}" for k, v in job.result.items() if isinstance(v, (str, int, float, bool)))
    return json.dumps(job.result)


def outcome_table(jobs: list[JobView], width: int) -> Table:
    """`demo`'s table of the jobs it ran: each one's state, attempts and result or error."""
    grid = table("Demo jobs", "job", "id", "state", "attempts")
    # the other columns take about 50 characters; the outcome gets what is left, on one line
    grid.add_column("result or error", no_wrap=True, overflow="ellipsis", max_width=max(20, min(64, width - 52)))
    for job in jobs:
        grid.add_row(job.job, job.id[:8], state_text(job.state), str(job.attempts), outcome_text(job))
    return grid


def job_table(job: JobView, timings: dict[str, Any] | None = None) -> Table:
    """One job as a two-column table; `timings` (jobdetail.attempt_timings) adds the times across retries."""
    grid = DataTable(
        show_header=False, title=data(f"Job {job.id}"), title_justify="left", title_style="bold", box=box.SIMPLE
    )
    grid.add_column(style="bold")
    grid.add_column()
    retried = job.attempts > 1
    last = " (last attempt)" if retried else ""
    max_retries = "its queue's" if job.max_retries is None else job.max_retries  # no config to say
    rows: list[tuple[str, str | Text]] = [
        ("job", job.job),
        ("queue", job.queue),
        ("state", state_text(job.state)),
        ("args", json.dumps(job.args, default=repr)),  # unpickled arguments of an rq-engine job may be any object
        ("kwargs", json.dumps(job.kwargs, default=repr)),
        ("attempts", f"{job.attempts} (max retries {max_retries})"),
    ]
    if job.created_at and job.enqueued_at and job.enqueued_at - job.created_at >= 0.001:
        rows += [("first enqueued", when(job.created_at)), ("last enqueued", when(job.enqueued_at))]
    else:
        rows.append(("enqueued", when(job.enqueued_at)))
    rows += [(f"started{last}", when(job.started_at)), (f"ended{last}", when(job.ended_at))]
    if job.state == "scheduled" and job.scheduled_for:
        rows.append(("runs at", when(job.scheduled_for)))
    if job.started_at and job.enqueued_at:
        rows.append((f"waited{last}", format_duration(max(0.0, job.started_at - job.enqueued_at))))
    if job.started_at and job.ended_at:
        rows.append((f"ran{last}", format_duration(max(0.0, job.ended_at - job.started_at))))
    if timings and retried and timings["total_waited_seconds"] is not None:
        rows.append(("waited in all", format_duration(timings["total_waited_seconds"])))
    if timings and timings["total_seconds"] is not None:
        rows.append(("first enqueued to end", format_duration(timings["total_seconds"])))
    if job.worker:
        rows.append(("worker", job.worker))
    if job.progress is not None and job.state == "started":  # an ended or requeued job's progress is history
        rows.append(("progress", progress_text(job)))
    if job.unreadable:
        rows.append(("payload", job.unreadable))
    if job.state == "finished":
        rows.append(("result", json.dumps(job.result, default=repr)))
    if job.reason:
        rows.append(("reason", job.reason))
    if job.callback_error:
        rows.append(("callback", job.callback_error))
    for entry in job.errors:
        rows.append((f"attempt {entry.get('attempt')}", data(entry.get("error"), style="red")))
    if job.error and not job.errors:  # an RQ worker's failure: its traceback's last line
        rows.append(("error", data(job.error.strip().splitlines()[-1], style="red")))
    if job.batch:
        rows.append(("batch", f"{job.batch} (jobctl batch show {job.batch})"))
    if job.depends_on:
        rows.append(("depends on", ", ".join(job.depends_on)))
    if job.dependents:
        rows.append(("dependents", ", ".join(job.dependents)))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


OUTPUT_TAIL_LINES = 20


def job_detail_view(detail: JobDetail, all_attempts: bool = False) -> Group:
    """`show`: the job's table, its dependency graph as a tree when it has one, the traceback of
    its last failed attempt (every attempt's with `all_attempts`) and the tail of its output."""
    # redis-py: loaded by the views that read Redis, not by `jobctl config` or `jobctl jobs`
    from ..api.jobdetail import attempt_timings

    attempts = detail.attempts
    parts: list[RenderableType] = [job_table(detail.job, attempt_timings(detail.job, attempts))]
    if detail.parents or detail.children:
        parts += [Text("Dependencies", style="bold"), dependency_tree(detail)]
    parts += tracebacks(detail.job, attempts, all_attempts)
    shown = [a for a in attempts if a.text]
    if shown:
        latest = shown[-1]
        output = latest.text.rstrip("\n").split("\n")
        title = (
            f"Output of attempt {latest.attempt}, last {min(len(output), OUTPUT_TAIL_LINES)} lines "
            f"(all of it: jobctl logs {detail.job.id})"
        )
        parts += [data(title, style="bold"), lines("\n".join(output[-OUTPUT_TAIL_LINES:]))]
    return Group(*parts)


def tracebacks(job: JobView, attempts: list[AttemptOutput], all_attempts: bool) -> list[Text]:
    """The last failure's traceback (the job record keeps it; once a retried job finished, as RQ
    leaves it, only its attempt's output record does), or with `all_attempts` the traceback of
    every attempt that has one (the attempts' output records keep them)."""
    found: list[tuple[Any, str]] = [(a.attempt, a.traceback) for a in attempts if a.traceback]
    if job.error and not (all_attempts and found):
        found = [(job.errors[-1].get("attempt") if job.errors else job.attempts, job.error)]
    elif not all_attempts:
        found = found[-1:]
    parts: list[Text] = []
    for number, text in found:
        parts += [data(f"Traceback of attempt {number}", style="bold red"), lines(text.rstrip("\n"))]
    return parts


def dependency_tree(detail: JobDetail) -> Tree:
    from rich.tree import Tree

    graph = Tree(data(f"{detail.job.id} {detail.job.job} ") + state_text(detail.job.state), guide_style="dim")
    if detail.parents:
        parents = graph.add(Text("parents", style="bold"))
        for parent in detail.parents:
            parents.add(relative_label(parent))
    if detail.children:
        children = graph.add(Text("children", style="bold"))
        _add_children(children, detail.children)
        if detail.more_children:
            children.add(Text(f"... and {detail.more_children} more", style="dim"))
    return graph


def _add_children(branch: Tree, children: list[Relative]) -> None:
    for child in children:
        _add_children(branch.add(relative_label(child)), child.children)


def relative_label(node: Relative) -> Text:
    if node.state is None:
        return data(f"{node.id} (record expired)", style="dim")
    label = data(f"{node.id} {node.job} ") + state_text(node.state)
    if node.canceled_by_parent:
        label.append(data(f" ({node.reason})", style="red"))
    elif node.reason:
        label.append(data(f" ({node.reason})"))
    return label


def follow(
    connection: redis.Redis, job_id: str, console: Console, stop: threading.Event, poll: float = 0.2
) -> JobView | None:
    """Follow a job to its end with a progress bar fed by `jobctl.progress`; returns its last
    view, or None once `stop` is set (by `ctrl_c()`)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    # redis-py: loaded by the views that read Redis, not by `jobctl config` or `jobctl jobs`
    from ..api import records

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("queued", total=100)
        while not stop.is_set():
            job = records.job(connection, job_id)
            if job.state in ("finished", "dead", "canceled"):
                return job
            label = job.state
            if job.state == "scheduled" and job.scheduled_for:
                label = f"scheduled, runs in {format_duration(max(0.0, job.scheduled_for - time.time()))}"
            if job.state == "started" and job.progress_message:
                label = job.progress_message
            if job.attempts > 1:
                label += f" (attempt {job.attempts})"
            bar.update(task, description=printable(f"{job.job} {label}"), completed=job.progress or 0)
            stop.wait(poll)
    return None


def follow_output(
    connection: redis.Redis,
    job_id: str,
    attempt: int,
    seen: dict[int, int],
    notes: Console,
    *,
    fixed: bool,
    poll: float = 0.5,
) -> bool:
    """`logs --follow`: print the attempt's new output as it is stored, moving on to the next
    attempt when the job is retried (unless `fixed`), until the job ends (True) or Ctrl-C (False)."""
    # redis-py: loaded by the views that read Redis, not by `jobctl config` or `jobctl jobs`
    from ..api import records
    from ..store import joboutput

    with ctrl_c() as stop:
        while not stop.is_set():
            job = records.job(connection, job_id)
            text, seen[attempt], lost = joboutput.read_since(
                connection, job_id, attempt, seen.get(attempt, 0), job.queue
            )
            if lost:
                notes.print(
                    f"--- {lost} bytes not kept (more than the last {joboutput.OUTPUT_LIMIT} per attempt)",
                    highlight=False,
                )
            sys.stdout.write(printable(text, lines=True))
            sys.stdout.flush()
            if not fixed and job.attempts > attempt:
                attempt += 1
                notes.print(f"--- attempt {attempt}", highlight=False)
                continue
            if job.state in ("finished", "dead", "canceled") and not text:
                return True
            stop.wait(poll)
    return False


@contextmanager
def batch_progress(
    label: str, total: int, console: Console, *, disable: bool = False
) -> Iterator[Callable[[int], None]]:
    """A progress bar of `total` items (`enqueue --from`), gone when done; yields advance(n)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=disable,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda count: bar.advance(task, count)
