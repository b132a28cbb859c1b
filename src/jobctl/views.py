"""Rich renderings of the data API's records: the tables `status`, `show` and `demo` print."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

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


def status_tables(view: Overview) -> Group:
    queues = Table(title="Queues", title_justify="left")
    queues.add_column("queue")
    queues.add_column("workers", justify="right")
    for state in STATES:
        queues.add_column(state, justify="right", style=STATE_STYLE[state])
    for q in view.queues:
        queues.add_row(q.name, f"{q.busy}/{q.workers}", *(str(q.counts[s]) for s in STATES))

    workers = Table(title="Workers", title_justify="left")
    for column in ("worker", "host", "pid", "queues", "state", "job", "done", "failed", "heartbeat"):
        workers.add_column(column)
    running = {j.id: j for j in view.running}
    for w in view.workers:
        job = running.get(w.current_job or "")
        workers.add_row(
            w.name, w.host, str(w.pid or "-"), ",".join(w.queues), state_text(w.state),
            f"{job.job} {job.id[:8]}" if job else "-", str(w.done), str(w.failed), ago(w.last_heartbeat, view.taken_at),
        )
    if not view.workers:
        workers.add_row("(no workers running: start them with `jobctl work`)", *[""] * 8)

    parts = [queues, workers]
    if view.running:
        jobs = Table(title="Running jobs", title_justify="left")
        for column in ("job", "id", "queue", "worker", "running for", "progress"):
            jobs.add_column(column)
        for j in view.running:
            jobs.add_row(j.job, j.id, j.queue, j.worker or "-", ago(j.started_at, view.taken_at).removesuffix(" ago"), progress_text(j))
        parts.append(jobs)
    return Group(*parts)


def recurring_table(rows) -> Table:
    table = Table(title="Recurring jobs", title_justify="left")
    for column in ("entry", "job", "queue", "schedule", "next runs"):
        table.add_column(column)
    for entry, runs in rows:
        schedule = entry.schedule.describe() + ("" if entry.enabled else " (disabled)")
        table.add_row(entry.name, entry.job, entry.queue, schedule, "\n".join(when(t.timestamp()) for t in runs))
    return table


def progress_text(job: JobView) -> str:
    if job.progress is None:
        return "-"
    message = f" {job.progress_message}" if job.progress_message else ""
    return f"{job.progress:.0f}%{message}"


def job_table(job: JobView) -> Table:
    table = Table(show_header=False, title=f"Job {job.id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
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
        table.add_row(label, value)
    return table


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
