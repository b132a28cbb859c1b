"""One job at a time: enqueue, show, logs, cancel, emit, search."""

import signal
import sys
import time
from datetime import datetime
from typing import Any

import typer

from ..config.settings import Settings
from ..errors import DuplicateJob, Interrupted, JobctlError, RedisOutOfMemory, UsageError
from ..options import strictjson
from ..store.keys import JOB_ID
from ..terminal import printable
from .common import (
    complete_job,
    complete_queue,
    console,
    duration_option,
    errors,
    fail,
    notes,
    print_json,
    print_plain,
    say,
)

# --- argument parsing --------------------------------------------------------------------------


def parse_value(text: str, where: str) -> Any:
    """A command-line value: strict JSON where it parses (5, true, [1,2], {"a":1}), a string
    otherwise: NaN, Infinity and 1e999 too, which are no JSON numbers (strictjson.py). JSON
    nested beyond strictjson.MAX_DEPTH is refused with a UsageError naming `where`."""
    try:
        return strictjson.loads(text)
    except strictjson.TooDeep as exc:
        raise UsageError(f"{where}: {exc}") from None
    except ValueError:
        return text


def parse_kwargs(pairs: list[str]) -> dict[str, Any]:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-k/--kwarg {pair!r}: expected key=value")
        kwargs[key] = parse_value(value, f"-k/--kwarg {key}")
    return kwargs


def parse_run_at(delay: str | None, at: str | None, now: float) -> float | None:
    if delay and at:
        raise UsageError("--in and --at: give one or the other")
    if delay:
        return now + duration_option("--in", delay)
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(f"--at {at!r}: expected an ISO date-time like 2026-05-01T09:30:00+02:00") from None
        return moment.timestamp()  # a time without an offset is this machine's local time
    return None


# --- commands ----------------------------------------------------------------------------------


def enqueue(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A registered job name (see `jobctl jobs`).", autocompletion=complete_job),
    args: list[str] | None = typer.Argument(None, help="Arguments: JSON where they parse, strings otherwise."),
    kwarg: list[str] | None = typer.Option(None, "--kwarg", "-k", help="Keyword argument key=value (repeatable)."),
    queue: str | None = typer.Option(
        None, "--queue", "-q", help="Queue to use instead of the job's own.", autocompletion=complete_queue
    ),
    delay: str | None = typer.Option(None, "--in", help="Run after this delay, e.g. 30s, 5m, 2h."),
    at: str | None = typer.Option(None, "--at", help="Run at this ISO date-time."),
    job_id: str | None = typer.Option(
        None,
        "--job-id",
        help="Use this job id: 1-128 letters, digits, '_', '-', '.' (refused while a job with it is active).",
    ),
    unique: bool = typer.Option(
        False,
        "--unique",
        help="Refuse a second copy while one is queued, scheduled or running (or, for a job with "
        "@job(unique=DURATION), for that long). Default: the job's own unique option.",
    ),
    depends_on: list[str] | None = typer.Option(
        None, "--depends-on", help="Wait for this job (id or unique prefix) to finish (repeatable)."
    ),
    allow_failure: bool = typer.Option(False, "--allow-failure", help="With --depends-on: run even if a parent dies."),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the job to its end with a progress bar; exit 1 if it dies."
    ),
    from_file: str | None = typer.Option(
        None,
        "--from",
        help='Enqueue one job per line of this JSON-lines file ({"args": [...], "kwargs": {...}}; - for stdin).',
    ),
    skip: int = typer.Option(
        0, "--skip", min=0, help="With --from: skip the first N jobs (to resume an interrupted --from)."
    ),
    batch: str | None = typer.Option(
        None, "--batch", help="Add the job (or the --from jobs) to this batch, made with jobctl.batch() in Python."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
) -> None:
    """Put a registered job on its queue, now, later or after other jobs; print its id.

    Example: jobctl enqueue channel_sync UC5g8GxrZysRS2dAb4yieC9o --in 5m
    """
    # imported here, not at start-up: only this command needs it
    from ..api.producer import ID_EXPECTED
    from ..api.producer import enqueue as put

    settings: Settings = ctx.obj
    if from_file is not None:
        if args or kwarg or delay or at or job_id or unique or depends_on or allow_failure or wait:
            raise UsageError(
                "--from: give the arguments in the file; only --queue, --skip, --batch and --json go with it"
            )
        settings.load_jobs()
        _enqueue_from(settings, job, from_file, queue, skip, as_json, batch)
        return
    if skip:
        raise UsageError("--skip without --from: it skips lines of a --from file")
    if allow_failure and not depends_on:
        raise UsageError("--allow-failure without --depends-on: it says whether a job runs after a parent dies")
    if job_id is not None and not JOB_ID.fullmatch(job_id):
        raise UsageError(f"--job-id {job_id[:60]!r}: {ID_EXPECTED}")
    settings.load_jobs()
    kwargs = parse_kwargs(kwarg or [])
    values = [parse_value(a, f"argument {number}") for number, a in enumerate(args or [], start=1)]
    run_at = parse_run_at(delay, at, time.time())
    parents: list[str] = []
    if depends_on:
        # imported here, not at start-up: only this command needs it
        from ..api.records import resolve_job_id

        parents = [resolve_job_id(settings.connection, parent, "--depends-on") for parent in depends_on]
    try:
        queued = put(
            settings.connection,
            settings.queues,
            job,
            values,
            kwargs,
            queue=queue,
            run_at=run_at,
            job_id=job_id,
            unique=unique or None,
            depends_on=parents,
            allow_failure=allow_failure,
            batch=batch or "",
        )
    except DuplicateJob as duplicate:
        if as_json:
            print_json({"id": duplicate.job_id, "state": duplicate.state, "duplicate": True})
        else:
            fail(f"not enqueued: {duplicate}")
        raise typer.Exit(1) from None
    if not wait:
        if as_json:
            # imported here, not at start-up: only this command needs it
            from ..api.records import job as job_view

            print_json(job_view(settings.connection, queued.id).to_dict())
        else:
            print_plain(queued.id)
        return
    # imported here, not at start-up: only this command needs it
    from . import jobviews, views

    with views.ctrl_c() as stop:  # from before the id is printed: a Ctrl-C once it is shown says what to do
        if not as_json:
            print_plain(queued.id)  # first: a Ctrl-C or a lost terminal does not lose it
        final = jobviews.follow(settings.connection, queued.id, notes(settings), stop)
    if final is None:
        fail(
            f"stopped following {queued.id}; the job goes on. Follow it with "
            f"`jobctl show {queued.id}` or `jobctl logs {queued.id} --follow`"
        )
        raise typer.Exit(130)
    if as_json:
        print_json(final.to_dict())
    else:
        console().print(jobviews.job_table(final))
    raise typer.Exit(0 if final.state == "finished" else 1)


def _enqueue_from(
    settings: Settings, job: str, source: str, queue: str | None, skip: int, as_json: bool, batch: str | None
) -> None:
    """`enqueue --from`: every line checked first, then stored in atomic batches with a progress
    bar. SIGINT/SIGTERM stop it between two batches and say how to resume."""
    # imported here, not at start-up: only this command needs it
    from ..api.producer import calls_from_json_lines, enqueue_many
    from .jobviews import batch_progress

    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"--from {source}: cannot read: {exc.strerror}") from None
    with stream:
        calls = calls_from_json_lines(stream, "stdin" if source == "-" else source, job)[skip:]
    stored_count = skip
    stop_signal: list[int] = []  # the signal received, if any
    started = time.monotonic()

    def resume_hint() -> str:
        return f"resume with: jobctl enqueue {job} --from {source} --skip {stored_count}"

    previous = {
        signum: signal.signal(signum, lambda signum, frame: stop_signal.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with batch_progress("enqueue", len(calls), errors(), disable=as_json) as advance:

            def on_batch(count: int) -> None:
                nonlocal stored_count
                stored_count += count
                advance(count)
                if stop_signal:
                    raise Interrupted

            stored = enqueue_many(
                settings.connection, settings.queues, job, calls, queue=queue, on_batch=on_batch, batch=batch or ""
            )
    except Interrupted:
        fail(
            f"{signal.Signals(stop_signal[0]).name}: stored {stored_count} of {skip + len(calls)} jobs "
            f"from {source}; {resume_hint()}"
        )
        raise typer.Exit(128 + stop_signal[0]) from None
    except RedisOutOfMemory as exc:
        raise RedisOutOfMemory(
            f"{exc}; {stored_count} of {skip + len(calls)} jobs were stored; {resume_hint()}"
        ) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    elapsed = time.monotonic() - started
    if as_json:
        print_json({"job": job, "stored": len(stored.ids), "seconds": round(elapsed, 3), "ids": stored.ids})
    else:
        say(f"stored {len(stored.ids)} {job} jobs on {stored.queue} in {elapsed:.2f}s")


def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job id `enqueue` printed, or a unique prefix of it (6+ characters)."),
    all_attempts: bool = typer.Option(False, "--all", help="The traceback of every attempt, not only the last."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
) -> None:
    """Everything about one job: state, arguments, attempts and errors, timings across retries,
    result, the last traceback, its dependency graph (parents, children, children canceled
    because a parent died) and the tail of what it printed.

    Example: jobctl show 0b5c9c1e --all
    """
    # imported here, not at start-up: only this command needs it
    from ..api import jobdetail, records

    settings: Settings = ctx.obj
    connection = settings.connection
    detail = jobdetail.job_detail(
        connection, records.resolve_job_id(connection, job_id), settings.queues.pickle_queues, settings.queues
    )
    if as_json:
        print_json(detail.to_dict())
        return
    # only the table needs Rich: `show --json` (scripts' and the tests' read) starts without it
    from . import jobviews

    console().print(jobviews.job_detail_view(detail, all_attempts))


def logs(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job id, or a unique prefix of it (6+ characters)."),
    attempt: int | None = typer.Option(None, "--attempt", "-a", min=1, help="Only this attempt [default: all]."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing the latest attempt's output until the job ends."
    ),
) -> None:
    """What a job printed (stdout, stderr) and logged, per attempt: the last 64 KB of each.

    Example: jobctl logs 0b5c9c1e --follow
    """
    # imported here, not at start-up: only this command needs it
    from ..api import records
    from ..store import joboutput
    from . import jobviews

    settings: Settings = ctx.obj
    connection = settings.connection
    job = records.job(connection, records.resolve_job_id(connection, job_id))
    if attempt is not None and attempt > max(job.attempts, 1):
        raise UsageError(f"--attempt {attempt}: job {job.id} has had {job.attempts} attempt(s)")
    numbers = [attempt] if attempt else list(range(1, job.attempts + 1))
    progress = notes(settings)
    seen: dict[int, int] = {}
    for output in joboutput.read(connection, job.id, numbers, job.queue):
        progress.print(
            f"--- attempt {output.attempt}" + (f" ({output.dropped} earlier bytes not kept)" if output.dropped else ""),
            highlight=False,
        )
        sys.stdout.write(printable(output.text, lines=True))
        sys.stdout.flush()
        seen[output.attempt] = output.written
    if follow and not jobviews.follow_output(
        connection, job.id, attempt or max(job.attempts, 1), seen, progress, fixed=attempt is not None
    ):
        raise typer.Exit(130)  # Ctrl-C


def cancel(
    ctx: typer.Context,
    job_ids: list[str] = typer.Argument(
        ..., help="Id(s), or unique prefixes, of queued, scheduled, deferred or running jobs."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Cancel jobs; their deferred dependents are canceled with them. A running job is stopped:
    its worker raises an exception inside it (its `finally` blocks run) and it ends canceled;
    cancel waits up to 10 s for that. Exits 1 for a job that had already ended.

    Example: jobctl cancel 0b5c9c1e-1f0a-4c1e-9a57-2f1c4e3b2a10
    """
    # imported here, not at start-up: only this command needs it
    from ..api import admin, records

    settings: Settings = ctx.obj
    connection = settings.connection
    outcomes: list[admin.Cancellation] = []
    exit_code = 0
    for given in job_ids:
        try:
            job_id = records.resolve_job_id(connection, given)
        except JobctlError as exc:  # reported, and the other ids are still handled
            exit_code = max(exit_code, exc.exit_code)
            outcomes.append(admin.Cancellation(given, None, False, error=str(exc)))
            if not as_json:
                fail(f"cannot cancel {given}: {exc}")
            continue
        # the script's answer (the state the job was in, and after) says everything printed below
        outcome = admin.cancel(connection, job_id)
        outcomes.append(outcome)
        if as_json:
            exit_code = exit_code or (0 if outcome.canceled or outcome.now in ("canceled", "started") else 1)
            continue
        if outcome.canceled:
            also = f"; canceled with it: {', '.join(outcome.dependents)}" if outcome.dependents else ""
            how = "stopped while running" if outcome.state == "started" else f"was {outcome.state}"
            say(job_id if settings.quiet else f"canceled {job_id} ({how}){also}", soft_wrap=True)
        elif outcome.state == "canceled":
            notes(settings).print(printable(f"{job_id} was already canceled"), highlight=False)
        elif outcome.now == "started":
            notes(settings).print(
                printable(
                    f"asked the worker of {job_id} to stop it; it has not stopped yet (a job stuck "
                    "outside Python is killed with its worker after a grace period)"
                ),
                highlight=False,
            )
        else:
            exit_code = max(exit_code, 1)
            fail(f"cannot cancel {job_id}: it already ended ({outcome.now})")
    if as_json:
        print_json([outcome.to_dict() for outcome in outcomes])
    raise typer.Exit(exit_code)  # 2 when an id was unknown or ambiguous, else 1 when a job could not be canceled


def emit(
    ctx: typer.Context,
    event: str = typer.Argument(..., help="The event name, as given to @on(...)."),
    payload: str | None = typer.Argument(
        None, help="The payload, JSON (default {}); each handler gets it as its argument."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the enqueued jobs as JSON."),
) -> None:
    """Enqueue one job per handler subscribed to EVENT (with @on), the payload as its argument;
    print their ids. An event without handlers is an error (exit 2).

    Example: jobctl emit user.signup '{"user_id": 42, "email": "ada@example.com"}'
    """
    # imported here, not at start-up: only this command needs it
    from ..api import events

    settings: Settings = ctx.obj
    settings.load_jobs()
    value = None
    if payload is not None:
        try:
            value = strictjson.loads(payload)
        except ValueError as exc:
            raise UsageError(
                f"emit: payload {payload[:60]!r} is not JSON ({exc}); expected e.g. '{{\"user_id\": 42}}'"
            ) from None
    enqueued = events.emit(settings.connection, settings.queues, event, value)
    if as_json:
        print_json(
            {"event": event, "jobs": [{"id": e.id, "job": e.job, "queue": e.queue, "state": e.state} for e in enqueued]}
        )
    else:
        for e in enqueued:
            print_plain(e.id)


def search(
    query: str = typer.Argument(..., help="What to look for in the uploaded documents."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
    top: int = typer.Option(5, "--top", "-n", min=1, help="How many chunks to return."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Query the chunks that the upload job stored, best match first.

    Example: jobctl search "how often should a job be retried" --collection demo
    """
    # imported here, not at start-up: only this command needs it
    from ..builtin.search import search as find
    from . import views

    hits = find(query, collection=collection, top=top)
    if as_json:
        print_json(hits)
    elif hits:
        console().print(views.search_table(query, hits))
    else:
        where = f" in collection {collection!r}" if collection else ""
        say(f"no match for {query!r}{where} (documents are added with `jobctl enqueue upload PATH`)")
