"""The dashboard's actions: POST only, each acting through jobctl.api.admin.

A browser session must send its CSRF token (the `csrf` form field, or the X-CSRF-Token header
from JavaScript); a Bearer-authenticated call carries no cookie, so it needs none. A form that
names a `next` page is sent back there with a one-line message; anything else gets JSON. With
--read-only every action answers 403.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..api import admin, joblists, records
from ..errors import UsageError
from ..options.durations import parse_duration
from ..store.jobdata import STATES
from .board import Dashboard, JSONBody, csrf_refusal, dashboard, error_page, render, session_of
from .pages import flash_redirect

CONFLICT = 409  # the job is not in a state the action applies to


@dataclass
class Outcome:
    message: str  # one line for the page the browser goes back to
    data: dict[str, Any] = field(default_factory=dict)  # the JSON answer
    status: int = 200
    confirm: dict[str, Any] | None = None  # purge without `confirm`: what the confirmation page shows


Handler = Callable[[Dashboard, dict[str, str], FormData], Outcome]


def action(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        board = dashboard(request)
        if board.read_only:
            return error_page(request, 403, "this dashboard is read-only (jobctl web --read-only): actions are off")
        form = await request.form()
        if refusal := csrf_refusal(request, form):
            return refusal
        session = session_of(request)
        outcome = await run_in_threadpool(handler, board, request.path_params, form)
        if session is not None and outcome.confirm is not None:
            return render(request, "purge_confirm.html", title="Confirm purge", **outcome.confirm)
        if session is not None and isinstance(form.get("next"), str):
            return flash_redirect(str(form["next"]), outcome.message)
        return JSONBody({"message": outcome.message, **outcome.data}, status_code=outcome.status)

    return endpoint


def _queue(board: Dashboard, name: str) -> str:
    return board.config.get(name, "queue").name


def _filtered_queues(board: Dashboard, form: FormData) -> list[str]:
    queue = str(form.get("queue") or "")
    return [_queue(board, queue)] if queue else list(board.config.queues)


# --- one job -------------------------------------------------------------------------------------


def requeue(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    job_id = params["job_id"]
    if admin.requeue_dead(board.connection, [], [job_id]):
        return Outcome(f"requeued {job_id}", {"requeued": [job_id]})
    return Outcome(f"{job_id} is not dead: nothing to requeue", {"requeued": []}, CONFLICT)


def cancel(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    """A running job too: its worker stops it (admin.cancel waits a few seconds for that)."""
    outcome = admin.cancel(board.connection, params["job_id"])
    data = outcome.to_dict()
    if outcome.canceled:
        how = " (stopped while running)" if outcome.state == "started" else ""
        also = f" and {len(outcome.dependents)} dependent job(s)" if outcome.dependents else ""
        return Outcome(f"canceled {outcome.job_id}{how}{also}", data)
    if outcome.now == "started":
        return Outcome(f"asked the worker running {outcome.job_id} to stop it; it is still stopping", data)
    return Outcome(f"{outcome.job_id} already ended ({outcome.now or outcome.state})", data, CONFLICT)


def delete(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    job_id = params["job_id"]
    records.job(board.connection, job_id)  # 404 for an unknown id
    if admin.delete(board.connection, [job_id]):
        return Outcome(f"deleted {job_id}", {"deleted": [job_id]})
    return Outcome(f"{job_id} is running: it can be deleted once it ended", {"deleted": []}, CONFLICT)


def enqueue_now(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    job_id = params["job_id"]
    if admin.enqueue_now(board.connection, job_id):
        return Outcome(f"queued {job_id} now", {"queued": [job_id]})
    return Outcome(f"{job_id} is not scheduled: nothing to queue", {"queued": []}, CONFLICT)


# --- many jobs: the selected ones, or every one matching the filter -------------------------------


def bulk(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    verb, state = str(form.get("action") or ""), str(form.get("state") or "dead")
    if verb not in ("requeue", "delete") or state not in STATES:
        raise UsageError(f"action {verb!r} on {state!r} jobs: expected requeue (dead jobs) or delete")
    if verb == "requeue" and state != "dead":
        raise UsageError("only dead jobs can be requeued")
    connection = board.connection
    if form.get("all"):
        where = joblists.JobFilter(str(form.get("job") or "") or None, str(form.get("q") or "") or None)
        queues = _filtered_queues(board, form)
        if verb == "requeue":
            count = admin.requeue_dead_matching(connection, queues, where)
        else:
            count = admin.delete_matching(connection, state, queues, where)
    else:
        ids = [str(i) for i in form.getlist("ids")]
        if not ids:
            raise UsageError("no job selected: tick some, or use the button for all that match")
        done = admin.requeue_dead(connection, [], ids) if verb == "requeue" else admin.delete(connection, ids)
        count = len(done)
    past = "requeued" if verb == "requeue" else "deleted"
    return Outcome(f"{past} {count} {state} job(s)", {past: count})


# --- queues ----------------------------------------------------------------------------------------


def pause(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    name = _queue(board, params["name"])
    changed = admin.pause(board.connection, [name])
    return Outcome(f"paused {name}" if changed else f"{name} was already paused", {"queue": name, "paused": True})


def resume(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    name = _queue(board, params["name"])
    changed = admin.resume(board.connection, [name])
    return Outcome(f"resumed {name}" if changed else f"{name} was not paused", {"queue": name, "paused": False})


def purge(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    """Without `confirm`, only counts: the browser shows a confirmation page, a script gets the count."""
    name = _queue(board, params["name"])
    state, older_than = str(form.get("state") or ""), str(form.get("older_than") or "0s")
    if state not in admin.PURGEABLE:
        raise UsageError(f"state {state!r}: expected {', '.join(admin.PURGEABLE)}")
    try:
        cutoff = time.time() - parse_duration(older_than)
    except ValueError as exc:
        raise UsageError(f"older than {older_than!r}: {exc}") from None
    what = f"{state} job(s) of {name} that ended more than {older_than} ago"
    if not form.get("confirm"):
        count = admin.purge(board.connection, name, state, cutoff, dry_run=True)
        return Outcome(
            f"would delete {count} {what}",
            {"would_delete": count},
            confirm={
                "queue": name,
                "state": state,
                "older_than": older_than,
                "count": count,
                "what": what,
                "back": str(form.get("next") or "/queues"),
            },
        )
    count = admin.purge(board.connection, name, state, cutoff, dry_run=False)
    return Outcome(f"deleted {count} {what}", {"deleted": count})


# --- recurring entries -------------------------------------------------------------------------------


def run_now(board: Dashboard, params: dict[str, str], form: FormData) -> Outcome:
    entries = {entry.name: entry for entry in board.settings.recurring()}
    entry = entries.get(params["entry"])
    if entry is None:
        raise UsageError(f"recurring entry {params['entry']!r} is not in {board.settings.recurring_path}")
    job_id = admin.run_recurring_now(board.connection, board.config, entry)
    return Outcome(f"enqueued {entry.name} now as {job_id}", {"id": job_id})


routes = [
    Route("/api/jobs/bulk", action(bulk), methods=["POST"]),
    Route("/api/jobs/{job_id}/requeue", action(requeue), methods=["POST"]),
    Route("/api/jobs/{job_id}/cancel", action(cancel), methods=["POST"]),
    Route("/api/jobs/{job_id}/delete", action(delete), methods=["POST"]),
    Route("/api/jobs/{job_id}/enqueue-now", action(enqueue_now), methods=["POST"]),
    Route("/api/queues/{name}/pause", action(pause), methods=["POST"]),
    Route("/api/queues/{name}/resume", action(resume), methods=["POST"]),
    Route("/api/queues/{name}/purge", action(purge), methods=["POST"]),
    Route("/api/recurring/{entry}/run", action(run_now), methods=["POST"]),
]
