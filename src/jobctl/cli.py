"""The `jobctl` command line: thin commands that read their arguments and call into the modules."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import List, Optional

import redis
import typer
from rich.console import Console

from . import api, views
from .errors import JobctlError, UsageError
from .settings import DEFAULT_CONFIG, DEFAULT_RECURRING, Settings

app = typer.Typer(
    help="A job runner over RQ and Redis: supervised workers, retries with backoff, a dead set, cron.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)
console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console = Console(width=120)  # piped or logged: do not squeeze tables into 80 columns
errors = Console(stderr=True)


@app.callback()
def main_options(
    ctx: typer.Context,
    redis_url: Optional[str] = typer.Option(
        None, "--redis-url", envvar="REDIS_URL", show_envvar=True,
        help="Redis URL (redis://, rediss://, unix://). Default: the embedded Redis under .jobctl/.",
    ),
    config: str = typer.Option(DEFAULT_CONFIG, "--config", envvar="JOBCTL_CONFIG", show_envvar=True, help="queue.yml to read."),
    recurring: Optional[str] = typer.Option(
        None, "--recurring", envvar="JOBCTL_RECURRING", show_envvar=True, help="recurring.yml to read. [default: recurring.yml]"
    ),
    jobs: Optional[str] = typer.Option(
        None, "--jobs", envvar="JOBCTL_JOBS", show_envvar=True, help="Comma-separated modules that register your jobs."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
):
    ctx.obj = Settings(
        redis_url=redis_url or None,
        config_path=config,
        recurring_path=recurring or DEFAULT_RECURRING,
        recurring_given=recurring is not None,
        job_modules=jobs,
        verbose=verbose,
    )


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- argument parsing --------------------------------------------------------------------------


def parse_value(text: str):
    """A command-line value: JSON where it parses (5, true, [1,2], {"a":1}), a string otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_kwargs(pairs: list[str]) -> dict:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-k/--kwarg {pair!r}: expected key=value")
        kwargs[key] = parse_value(value)
    return kwargs


def parse_run_at(delay: str | None, at: str | None, now: float) -> float | None:
    from .durations import parse_duration

    if delay and at:
        raise UsageError("--in and --at: give one or the other")
    if delay:
        try:
            return now + parse_duration(delay)
        except ValueError as exc:
            raise UsageError(f"--in {delay!r}: {exc}") from None
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(f"--at {at!r}: expected an ISO date-time like 2026-05-01T09:30:00+02:00") from None
        return moment.timestamp()  # a time without an offset is this machine's local time
    return None


# --- commands ----------------------------------------------------------------------------------


@app.command()
def work(
    ctx: typer.Context,
    queue: Optional[List[str]] = typer.Option(None, "--queue", "-q", help="Serve only this queue (repeatable)."),
    burst: bool = typer.Option(False, "--burst", help="Drain the queues (and retries due soon), then exit 0."),
):
    """Start the configured worker processes per queue and supervise them.

    Example: jobctl work --queue default --queue analytics
    """
    from . import logs
    from .supervisor import Supervisor

    settings: Settings = ctx.obj
    logs.setup(settings.verbose)
    settings.load_jobs()
    queues = settings.queues.select(queue)
    settings.connection  # fail now, with one line, if Redis does not answer
    raise typer.Exit(Supervisor(settings.url, queues, burst=burst).run())


@app.command()
def enqueue(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A registered job name (see `jobctl jobs`)."),
    args: Optional[List[str]] = typer.Argument(None, help="Arguments: JSON where they parse, strings otherwise."),
    kwarg: Optional[List[str]] = typer.Option(None, "--kwarg", "-k", help="Keyword argument key=value (repeatable)."),
    queue: Optional[str] = typer.Option(None, "--queue", "-q", help="Queue to use instead of the job's own."),
    delay: Optional[str] = typer.Option(None, "--in", help="Run after this delay, e.g. 30s, 5m, 2h."),
    at: Optional[str] = typer.Option(None, "--at", help="Run at this ISO date-time."),
    job_id: Optional[str] = typer.Option(None, "--job-id", help="Use this job id (refused while a job with it is active)."),
    unique: bool = typer.Option(False, "--unique", help="Refuse a second copy while one is queued, scheduled or running."),
    depends_on: Optional[List[str]] = typer.Option(None, "--depends-on", help="Wait for this job to finish (repeatable)."),
    allow_failure: bool = typer.Option(False, "--allow-failure", help="Run even if a --depends-on parent dies."),
    wait: bool = typer.Option(False, "--wait", help="Follow the job to its end with a progress bar; exit 1 if it dies."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
):
    """Put a registered job on its queue, now, later or after other jobs; print its id.

    Example: jobctl enqueue channel_sync UC_x5XG1OV2P6uZZ5FSM9Ttw --in 5m
    """
    from .producer import DuplicateJob, enqueue as put

    settings: Settings = ctx.obj
    settings.load_jobs()
    kwargs = parse_kwargs(kwarg or [])
    values = [parse_value(a) for a in args or []]
    run_at = parse_run_at(delay, at, time.time())
    try:
        queued = put(
            settings.connection, settings.queues, job, values, kwargs, queue=queue, run_at=run_at, job_id=job_id,
            unique=unique, depends_on=depends_on or [], allow_failure=allow_failure,
        )
    except DuplicateJob as duplicate:
        if as_json:
            _print_json({"id": duplicate.job_id, "state": duplicate.state, "duplicate": True})
        else:
            errors.print(f"jobctl: not enqueued: job {duplicate.job_id} is already {duplicate.state}")
        raise typer.Exit(1)
    if not wait:
        if as_json:
            _print_json(api.job(settings.connection, queued.id).to_dict())
        else:
            console.print(queued.id, highlight=False)
        return
    final = views.follow(settings.connection, queued.id, errors)
    if as_json:
        _print_json(final.to_dict())
    else:
        console.print(views.job_table(final))
    raise typer.Exit(0 if final.state == "finished" else 1)


@app.command()
def status(
    ctx: typer.Context,
    live: bool = typer.Option(False, "--live", help="Keep a live view open (Ctrl-C to leave)."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between refreshes of --live."),
    as_json: bool = typer.Option(False, "--json", help="Print the same data as JSON."),
):
    """Queues with a count per state, workers, and the jobs running now.

    Example: jobctl status --json | jq '.queues[] | {name, queued, dead}'
    """
    settings: Settings = ctx.obj
    connection, config = settings.connection, settings.queues
    if as_json:
        _print_json(api.overview(connection, config).to_dict())
    elif live:
        from rich.live import Live

        try:
            with Live(views.status_tables(api.overview(connection, config)), console=console, screen=False,
                      auto_refresh=False) as screen:
                while True:
                    time.sleep(interval)
                    screen.update(views.status_tables(api.overview(connection, config)), refresh=True)
        except KeyboardInterrupt:
            pass
    else:
        console.print(views.status_tables(api.overview(connection, config)))


@app.command()
def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job id `enqueue` printed."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
):
    """Everything about one job: state, arguments, attempts and errors, timings, result.

    Example: jobctl show 0b5c9c1e-1f0a-4c1e-9a57-2f1c4e3b2a10 --json
    """
    settings: Settings = ctx.obj
    job = api.job(settings.connection, job_id)
    if as_json:
        _print_json(job.to_dict())
    else:
        console.print(views.job_table(job))


@app.command(name="requeue-dead")
def requeue_dead(
    ctx: typer.Context,
    queue: Optional[List[str]] = typer.Option(None, "--queue", "-q", help="Only dead jobs of this queue (repeatable)."),
    job_id: Optional[List[str]] = typer.Option(None, "--job-id", help="Only this dead job (repeatable)."),
    all_queues: bool = typer.Option(False, "--all", help="Every dead job of every configured queue."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be requeued; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the requeued ids as JSON."),
):
    """Move dead jobs (retries exhausted, permanent errors) back onto their queues, with a fresh retry budget.

    Example: jobctl requeue-dead --queue analytics --dry-run
    """
    from .transitions import Transitions

    settings: Settings = ctx.obj
    if not (queue or job_id or all_queues):
        raise UsageError("requeue-dead: say which jobs: --queue Q, --job-id ID or --all")
    connection = settings.connection
    candidates = list(job_id or [])
    for q in settings.queues.select(queue) if (queue or all_queues) else []:
        candidates += api.dead_job_ids(connection, q.name)
    dead = [j for j in api.jobs(connection, list(dict.fromkeys(candidates))) if j.state == "dead"]
    transitions = Transitions(connection)
    requeued = dead if dry_run else [j for j in dead if transitions.requeue_dead(j.id, time.time())]
    if as_json:
        _print_json({"dry_run": dry_run, "requeued": [{"id": j.id, "job": j.job, "queue": j.queue} for j in requeued]})
        return
    for j in requeued:
        console.print(f"{'would requeue' if dry_run else 'requeued'} {j.id} {j.job} [{j.queue}]", highlight=False)
    console.print(f"{len(requeued)} dead job(s) {'would be ' if dry_run else ''}requeued", highlight=False)


@app.command()
def scheduler(
    ctx: typer.Context,
    list_only: bool = typer.Option(False, "--list", help="Print each entry and its next three run times, then exit."),
    as_json: bool = typer.Option(False, "--json", help="With --list: print as JSON."),
):
    """The cron-style daemon for recurring.yml; --list prints each entry's next runs.

    Example: jobctl scheduler --list
    """
    settings: Settings = ctx.obj
    entries = settings.recurring()
    if list_only:
        now = datetime.now().astimezone()
        rows = [(entry, entry.schedule.next_runs(now, 3)) for entry in entries]
        if as_json:
            _print_json([
                {"name": e.name, "job": e.job, "queue": e.queue, "schedule": e.schedule.text, "timezone": e.timezone,
                 "enabled": e.enabled, "next_runs": [t.isoformat() for t in runs]}
                for e, runs in rows
            ])
        else:
            console.print(views.recurring_table(rows))
        return
    raise UsageError("scheduler: the daemon is not built yet; use --list")


@app.command()
def jobs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The registered job names, their queues and signatures.

    Example: JOBCTL_JOBS=myapp.jobs jobctl jobs
    """
    from rich.table import Table

    from . import registry

    settings: Settings = ctx.obj
    settings.load_jobs()
    specs = registry.all_jobs()
    if as_json:
        _print_json([{"name": s.name, "queue": s.queue, "signature": s.signature, "module": s.module} for s in specs])
        return
    table = Table(title="Registered jobs", title_justify="left")
    for column in ("job", "queue", "signature", "module"):
        table.add_column(column)
    for s in specs:
        table.add_row(s.name, s.queue, s.signature, s.module)
    console.print(table)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for in the uploaded documents."),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Only this collection."),
    top: int = typer.Option(5, "--top", "-k", min=1, help="How many chunks to return."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Query the chunks that the upload job stored, best match first.

    Example: jobctl search "how often should a job be retried" --collection demo
    """
    from rich.table import Table

    from .builtin.upload import search as find

    hits = find(query, collection=collection, top=top)
    if as_json:
        _print_json(hits)
        return
    table = Table(title=f"Best matches for {query!r}", title_justify="left")
    for column in ("score", "document", "chunk", "text"):
        table.add_column(column)
    for hit in hits:
        table.add_row(f"{hit['score']:.3f}", hit["document"], str(hit["chunk_index"]), hit["text"][:200])
    console.print(table)


@app.command()
def demo(ctx: typer.Context):
    """The whole system in one command: enqueue a realistic batch, run the workers until the
    queues drain, print the status tables. Uses the embedded Redis unless REDIS_URL is set.

    Example: jobctl demo
    """
    from .demo import run_demo

    raise typer.Exit(run_demo(ctx.obj, console))


def main() -> None:
    try:
        app()
    except JobctlError as exc:
        errors.print(f"jobctl: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except redis.ConnectionError as exc:
        from .connection import unavailable_reason

        errors.print(f"jobctl: error: lost the connection to Redis: {unavailable_reason(exc)}", highlight=False, markup=False)
        sys.exit(2)
