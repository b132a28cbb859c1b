"""The dashboard's pages (server-rendered, readable without JavaScript), the login, and the JSON
reads under /api, which return exactly what `status --json`, `show --json` and `stats --json` print.
Everything is read through jobctl.api."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..api import batches, jobdetail, joblists, jobstats, reads, records
from ..errors import UsageError
from ..store.jobdata import STATES
from . import charts
from .auth import COOKIE, SESSION_SECONDS, client_address
from .board import FLASH_COOKIE, JSONBody, csrf_refusal, dashboard, render, session_of

HOUR, DAY = 60, 1440  # minutes
PREVIEW_CHARS = 200  # of a job's arguments a list row shows, on hover


def _int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise UsageError(f"?{name}={value!r}: expected a whole number")
    return int(value)


# --- login ---------------------------------------------------------------------------------------


def _local(target: str | None) -> str:
    """Only a path on this site is followed after login (no open redirect)."""
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


async def login_form(request: Request) -> Response:
    return render(request, "login.html", title="Log in", next=_local(request.query_params.get("next")), failed=False)


async def login(request: Request) -> Response:
    board = dashboard(request)
    form = await request.form()
    target = _local(str(form.get("next") or "/"))
    if not board.auth.token_matches(str(form.get("token") or "")):
        await board.auth.failed(client_address(request))
        return render(request, "login.html", 401, title="Log in", next=target, failed=True)
    session = await run_in_threadpool(board.auth.open_session, board.connection)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    """Closes the session in Redis, so the cookie is dead wherever it was copied."""
    board = dashboard(request)
    if refusal := csrf_refusal(request, await request.form()):
        return refusal
    if session := session_of(request):
        await run_in_threadpool(board.auth.close_session, board.connection, session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


# --- pages ---------------------------------------------------------------------------------------


def overview(request: Request) -> Response:
    board = dashboard(request)
    view = reads.overview(board.connection, board.config, running_in_full=False)
    names = list(board.config.queues)
    day = jobstats.minute_history(board.connection, names, DAY, view.taken_at)
    hour = jobstats.MinuteHistory(day.first_minute + DAY - HOUR, day.finished[-HOUR:], day.failed[-HOUR:])
    return render(
        request,
        "overview.html",
        title="Overview",
        view=view,
        states=STATES,
        now=view.taken_at,
        charts=[charts.series(hour, "Last hour", 1), charts.series(day, "Last day", 15)],
        bar_chart=charts.bar_chart,
    )


def queues(request: Request) -> Response:
    board = dashboard(request)
    return render(
        request,
        "queues.html",
        title="Queues",
        queues=reads.queues_with_workers(board.connection, board.config),
        states=STATES,
    )


def jobs(request: Request) -> Response:
    board = dashboard(request)
    state = request.query_params.get("state") or "queued"
    if state not in STATES:
        raise UsageError(f"?state={state!r}: expected one of {', '.join(STATES)}")
    queue = request.query_params.get("queue") or ""
    names = [board.config.get(queue, "?queue").name] if queue else list(board.config.queues)
    where = joblists.JobFilter(request.query_params.get("job") or None, request.query_params.get("q") or None)
    size = min(_int(request, "size", joblists.PAGE_SIZE), 500)
    page = joblists.job_page(board.connection, state, names, start=_int(request, "start", 0), size=size, where=where)
    return render(
        request,
        "jobs.html",
        title=f"{state.capitalize()} jobs",
        page=page,
        state=state,
        queue=queue,
        where=where,
        size=size,
        states=STATES,
        queue_names=list(board.config.queues),
        job_names=board.job_names,
        window=joblists.FILTER_WINDOW,
        preview_chars=PREVIEW_CHARS,
        now=time.time(),
    )


SHOWN_CHARS = 64 * 1024  # of a job's arguments, result or traceback its page shows; all of it: /api/jobs/<id>


@dataclass
class Shown:
    """A value as a job's page shows it: its start, and how long it is in all."""

    text: str
    length: int

    @property
    def cut(self) -> bool:
        return self.length > len(self.text)


def shown(value: Any) -> Shown:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    return Shown(text[:SHOWN_CHARS], len(text))


def job(request: Request) -> Response:
    board = dashboard(request)
    detail = jobdetail.job_detail(board.connection, request.path_params["job_id"], config=board.config)
    view = detail.job
    return render(
        request,
        "job.html",
        title=f"Job {view.id}",
        detail=detail,
        job=view,
        shown={"args": shown(view.args), "kwargs": shown(view.kwargs), "result": shown(view.result)},
        traceback=shown(view.error) if view.error else None,
        now=time.time(),
    )


def batch(request: Request) -> Response:
    board = dashboard(request)
    view = batches.read(board.connection, request.path_params["batch_id"])
    return render(request, "batch.html", title=f"Batch {view.id}", batch=view)


def recurring(request: Request) -> Response:
    board = dashboard(request)
    entries = board.settings.recurring()
    runs = jobstats.recurring_runs(board.connection, [entry.name for entry in entries])
    now = datetime.now().astimezone()
    rows = [(entry, entry.schedule.next_runs(now, 3), runs[entry.name]) for entry in entries]
    return render(
        request,
        "recurring.html",
        title="Recurring",
        rows=rows,
        now=time.time(),
        path_of_file=board.settings.recurring_path,
    )


def workers(request: Request) -> Response:
    board = dashboard(request)
    found = reads.workers(board.connection)
    in_flight = [job_id for worker in found for job_id in worker.jobs]
    running = {j.id: j for j in records.listed_jobs(board.connection, in_flight).views}
    hosts: dict[str, list[reads.WorkerSummary]] = {}
    for worker in found:
        hosts.setdefault(worker.host or "?", []).append(worker)
    return render(
        request,
        "workers.html",
        title="Workers",
        hosts=hosts,
        running=running,
        count=len(found),
        now=time.time(),
    )


def stats(request: Request) -> Response:
    board = dashboard(request)
    found = jobstats.stats(board.connection, board.config, board.job_names)
    return render(request, "stats.html", title="Stats", stats=found, now=time.time())


# --- JSON reads: the CLI's --json, the same functions -------------------------------------------


def status_json(request: Request) -> Response:
    board = dashboard(request)
    return JSONBody(reads.overview(board.connection, board.config).to_dict())


def job_json(request: Request) -> Response:
    board = dashboard(request)
    return JSONBody(
        jobdetail.job_detail(board.connection, request.path_params["job_id"], config=board.config).to_dict()
    )


def stats_json(request: Request) -> Response:
    board = dashboard(request)
    params = request.query_params
    found = jobstats.stats(
        board.connection,
        board.config,
        board.job_names,
        job=params.get("job") or None,
        queue=params.get("queue") or None,
        recent=_int(request, "recent", jobstats.RECENT_EXECUTIONS),
    )
    return JSONBody(found.to_dict())


def flash_redirect(target: str, message: str) -> Response:
    """Back to the page an action came from, with one line saying what happened."""
    response = RedirectResponse(_local(target), status_code=303)
    response.set_cookie(FLASH_COOKIE, message[:300], max_age=60, httponly=True, samesite="strict")
    return response


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/", overview),
    Route("/queues", queues),
    Route("/jobs", jobs),
    Route("/jobs/{job_id}", job),
    Route("/batches/{batch_id}", batch),
    Route("/recurring", recurring),
    Route("/workers", workers),
    Route("/stats", stats),
    Route("/api/status", status_json),
    Route("/api/jobs/{job_id}", job_json),
    Route("/api/stats", stats_json),
]
