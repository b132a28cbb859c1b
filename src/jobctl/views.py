"""Rich renderings of the data API's records: the tables `status`, `show` and `demo` print."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .api import Overview
from .durations import format_duration
from .jobdata import STATES, JobView

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
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: float | None, now: float | None = None) -> str:
    if moment is None:
        return "-"
    return format_duration(max(0.0, (now or time.time()) - moment)) + " ago"


def table(title: str, *columns: str, **options) -> Table:
    """The tables' common look: compact, so that status fits an 80-column terminal."""
    grid = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1), **options)
    for column in columns:
        grid.add_column(column, min_width=len(column), no_wrap=column in ("queue", "job", "id", "worker", "entry"))
    return grid


def status_tables(view: Overview) -> Group:
    queues = table("Queues", "queue")
    queues.add_column("workers", justify="right")
    for state in STATES:
        queues.add_column(state, justify="right", style=STATE_STYLE[state])
    for q in view.queues:
        queues.add_row(q.name, f"{q.busy}/{q.workers}", *(str(q.counts[s]) for s in STATES))

    workers = table("Workers", "worker", "host", "pid", "queues", "state", "job", "done", "failed", "heartbeat")
    running = {j.id: j for j in view.running}
    for w in view.workers:
        job = running.get(w.current_job or "")
        workers.add_row(
            w.name, w.host, str(w.pid or "-"), ",".join(w.queues), state_text(w.state),
            f"{job.job} {job.id[:8]}" if job else "-", str(w.done), str(w.failed), ago(w.last_heartbeat, view.taken_at),
        )
    if not view.workers:
        workers.caption = "no workers running: start them with `jobctl work`"

    parts = [queues, workers]
    if view.running:
        jobs = table("Running jobs", "job", "id", "queue", "worker", "running for", "progress")
        for j in view.running:
            jobs.add_row(j.job, j.id, j.queue, j.worker or "-", ago(j.started_at, view.taken_at).removesuffix(" ago"), progress_text(j))
        parts.append(jobs)
    return Group(*parts)


def recurring_table(rows) -> Table:
    grid = table("Recurring jobs", "entry", "job", "queue", "schedule", "next runs")
    for entry, runs in rows:
        schedule = entry.schedule.describe() + ("" if entry.enabled else " (disabled)")
        grid.add_row(entry.name, entry.job, entry.queue, schedule, "\n".join(when(t.timestamp()) for t in runs))
    return grid


def outcome_text(job: JobView) -> str:
    """One short line: a finished job's result (scalars of a dict result), or why it failed."""
    if job.state != "finished":
        return job.last_error_line or "-"
    if isinstance(job.result, dict):
        return ", ".join(f"{k}={v}" for k, v in job.result.items() if isinstance(v, (str, int, float, bool)))
    return json.dumps(job.result)


def progress_text(job: JobView) -> str:
    if job.progress is None:
        return "-"
    message = f" {job.progress_message}" if job.progress_message else ""
    return f"{job.progress:.0f}%{message}"


def job_table(job: JobView) -> Table:
    grid = Table(show_header=False, title=f"Job {job.id}", title_justify="left", title_style="bold", box=box.SIMPLE)
    grid.add_column(style="bold")
    grid.add_column()
    rows = [
        ("job", job.job),
        ("queue", job.queue),
        ("state", state_text(job.state)),
        ("args", json.dumps(job.args)),
        ("kwargs", json.dumps(job.kwargs)),
        ("attempts", f"{job.attempts} (max retries {job.max_retries})"),
        ("enqueued", when(job.enqueued_at)),
        ("started", when(job.started_at)),
        ("ended", when(job.ended_at)),
    ]
    if job.state == "scheduled" and job.scheduled_for:
        rows.append(("runs at", when(job.scheduled_for)))
    if job.started_at and job.enqueued_at:
        rows.append(("waited", format_duration(max(0.0, job.started_at - job.enqueued_at))))
    if job.started_at and job.ended_at:
        rows.append(("ran", format_duration(max(0.0, job.ended_at - job.started_at))))
    if job.worker:
        rows.append(("worker", job.worker))
    if job.progress is not None:
        rows.append(("progress", progress_text(job)))
    if job.state == "finished":
        rows.append(("result", json.dumps(job.result)))
    if job.reason:
        rows.append(("reason", job.reason))
    for entry in job.errors:
        rows.append((f"attempt {entry.get('attempt')}", Text(str(entry.get("error")), style="red")))
    if job.depends_on:
        rows.append(("depends on", ", ".join(job.depends_on)))
    if job.dependents:
        rows.append(("dependents", ", ".join(job.dependents)))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def follow(connection, job_id: str, console, poll: float = 0.2) -> JobView:
    """Follow a job to its end with a progress bar fed by `jobctl.progress`; returns its last view."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from . import api

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:
        task = bar.add_task("queued", total=100)
        while True:
            job = api.job(connection, job_id)
            if job.state in ("finished", "dead", "canceled"):
                return job
            label = job.state
            if job.state == "scheduled" and job.scheduled_for:
                label = f"scheduled, runs in {format_duration(max(0.0, job.scheduled_for - time.time()))}"
            if job.state == "started" and job.progress_message:
                label = job.progress_message
            if job.attempts > 1:
                label += f" (attempt {job.attempts})"
            bar.update(task, description=f"{job.job} {label}", completed=job.progress or 0)
            time.sleep(poll)
