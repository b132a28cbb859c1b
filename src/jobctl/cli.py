"""The `jobctl` command line: thin commands that read their arguments and call into the modules."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import redis
import typer
from rich.console import Console

from . import api, views
from .errors import JobctlError, OperationFailed, UsageError
from .settings import DEFAULT_CONFIG, DEFAULT_RECURRING, Settings

app = typer.Typer(
    help="A job runner over RQ and Redis: supervised workers, retries with backoff, a dead set, cron.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# markup=False: ids, arguments, errors and progress messages are data, never Rich markup
console = Console(markup=False)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # piped or logged: the terminal's width where there is one (stderr), else a fixed 120 columns
    console = Console(markup=False, width=os.get_terminal_size(2).columns if sys.stderr.isatty() else 120)
errors = Console(stderr=True, markup=False)


@app.callback()
def main_options(
    ctx: typer.Context,
    redis_url: Optional[str] = typer.Option(
        None,
        "--redis-url",
        envvar="REDIS_URL",
        show_envvar=True,
        help="Redis URL (redis://, rediss://, unix://, valkey://, redis+sentinel://h:p,h:p/service/db). "
        "Default: the embedded Redis under .jobctl/.",
    ),
    config: str = typer.Option(
        DEFAULT_CONFIG, "--config", envvar="JOBCTL_CONFIG", show_envvar=True, help="queue.yml to read."
    ),
    recurring: Optional[str] = typer.Option(
        None,
        "--recurring",
        envvar="JOBCTL_RECURRING",
        show_envvar=True,
        help="recurring.yml to read. [default: recurring.yml]",
    ),
    jobs: Optional[str] = typer.Option(
        None, "--jobs", envvar="JOBCTL_JOBS", show_envvar=True, help="Comma-separated modules that register your jobs."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        help="Only errors, warnings and the essential output (ids, tables, JSON); no progress or notes.",
    ),
    log_format: str = typer.Option(
        "plain",
        "--log-format",
        envvar="JOBCTL_LOG_FORMAT",
        show_envvar=True,
        help="Log lines of work/scheduler: plain, or json (one object per line).",
    ),
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=lambda shown: _print_version(shown),
        help="Print the version and exit.",
    ),
):
    ctx.obj = Settings(
        redis_url=redis_url or None,
        config_path=config,
        recurring_path=recurring or DEFAULT_RECURRING,
        recurring_given=recurring is not None,
        job_modules=jobs,
        verbose=verbose,
        quiet=quiet,
        sources=_option_sources(
            ctx,
            {"redis_url": "redis_url", "config": "config_path", "recurring": "recurring_path", "jobs": "job_modules"},
        ),
    )
    from . import logs

    if quiet and verbose:
        raise UsageError("--quiet and --verbose: give one or the other")
    if log_format not in logs.FORMATS:
        raise UsageError(f"--log-format {log_format!r}: expected plain or json")
    logs.setup(verbose, log_format)
    if quiet:
        # a filter, not a level: it holds when a command sets the logger up again
        logs.get().addFilter(lambda record: record.levelno >= logging.WARNING)


def _print_version(shown: bool) -> None:
    if shown:
        from . import __version__

        console.print(f"jobctl {__version__}", highlight=False)
        raise typer.Exit()


def _option_sources(ctx: typer.Context, settings_of: dict[str, str]) -> dict[str, str]:
    """Where each global option's value came from, for `jobctl config`."""
    from .settings import DEFAULT_SOURCE, env_source, flag_source

    sources = {}
    for param in ctx.command.params:
        if param.name in settings_of:
            # by name: Typer ships its own copy of click, with its own ParameterSource enum
            origin = getattr(ctx.get_parameter_source(param.name), "name", "DEFAULT")
            if origin == "COMMANDLINE":
                sources[settings_of[param.name]] = flag_source(param.opts[0])
            elif origin == "ENVIRONMENT":
                sources[settings_of[param.name]] = env_source(param.envvar)
            else:
                sources[settings_of[param.name]] = DEFAULT_SOURCE
    return sources


def _notes(settings: Settings) -> Console:
    """Where progress and notes go: stderr, silent with --quiet."""
    return Console(stderr=True, quiet=settings.quiet, markup=False)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- shell completion: from queue.yml and the job registry, without Redis ---------------------


def complete_queue(ctx: typer.Context, incomplete: str) -> list[str]:
    """Queue names from queue.yml (the --config in effect on the command line being completed)."""
    from .config import load_queues

    try:
        names = load_queues(ctx.find_root().params.get("config") or DEFAULT_CONFIG).queues
    except JobctlError:
        return []
    return [name for name in names if name.startswith(incomplete)]


def complete_job(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Registered job names (built-in and --jobs modules), each with its queue as help."""
    from . import registry

    try:
        registry.load(ctx.find_root().params.get("jobs"))
    except JobctlError:
        return []
    return [(spec.name, f"queue {spec.queue}") for spec in registry.all_jobs() if spec.name.startswith(incomplete)]


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


def _duration_option(option: str, text: str) -> float:
    from .durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None


def parse_run_at(delay: str | None, at: str | None, now: float) -> float | None:
    if delay and at:
        raise UsageError("--in and --at: give one or the other")
    if delay:
        return now + _duration_option("--in", delay)
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(f"--at {at!r}: expected an ISO date-time like 2026-05-01T09:30:00+02:00") from None
        return moment.timestamp()  # a time without an offset is this machine's local time
    return None


# --- commands ----------------------------------------------------------------------------------


@app.command()
def init(
    directory: str = typer.Argument(".", help="Where to write the files (created if needed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
):
    """Start a project: write a commented queue.yml, recurring.yml and example_jobs.py (a plain
    job, an async one, one that reports progress). Never overwrites without --force.

    Example: jobctl init myproject && cd myproject && JOBCTL_JOBS=example_jobs jobctl work
    """
    from .scaffold import write_project

    written = write_project(directory, force=force)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    here = written[0].parent
    cd = "" if here == Path.cwd().resolve() else f"cd {here} && "
    errors.print(
        f"next: {cd}JOBCTL_JOBS=example_jobs jobctl work   (and in another terminal: "
        f"{cd}JOBCTL_JOBS=example_jobs jobctl enqueue hello Ada --wait)",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def work(
    ctx: typer.Context,
    queue: Optional[List[str]] = typer.Option(
        None,
        "--queue",
        "-q",
        autocompletion=complete_queue,
        help="Serve only this queue. Repeated, the workers serve all the named queues together "
        "(by weight where weights are set, else in priority order).",
    ),
    burst: bool = typer.Option(False, "--burst", help="Drain the queues (and retries due soon), then exit 0."),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", help="Also serve Prometheus /metrics on this port."
    ),
    metrics_host: str = typer.Option("0.0.0.0", "--metrics-host", help="Address for --metrics-port."),
    name: Optional[str] = typer.Option(
        None,
        "--name",
        help="This supervisor's name, for several on one host (default host.pid); `health --name` checks it.",
    ),
    statsd: Optional[str] = typer.Option(
        None,
        "--statsd",
        envvar="JOBCTL_STATSD",
        show_envvar=True,
        help="Send per-job timings and counters to StatsD at host:port (prefix: JOBCTL_STATSD_PREFIX, default jobctl).",
    ),
):
    """Start the configured worker processes per queue and supervise them.

    Example: jobctl work --queue default --queue analytics --metrics-port 9121
    """
    from . import logs, statsd_metrics
    from .supervisor import Supervisor

    settings: Settings = ctx.obj
    logs.setup(settings.verbose)
    try:
        statsd_metrics.configure(statsd)
    except ValueError as exc:
        raise UsageError(f"--statsd / JOBCTL_STATSD: {exc}") from None
    settings.load_jobs()
    queues = settings.queues.select(queue)
    if len(queue or []) > 1:
        from .rq_engine import check_pool

        check_pool(queues)
    settings.connection  # fail now, with one line, if Redis does not answer
    supervisor = Supervisor(
        settings.url, queues, burst=burst, shared=len(queue or []) > 1, **({"name": name} if name else {})
    )
    exporter = None
    if metrics_port is not None:
        from . import metrics

        exporter = metrics.serve(settings.url, settings.queues, metrics_port, metrics_host)
    try:
        code = supervisor.run()
    finally:
        if exporter:
            exporter.shutdown()
    raise typer.Exit(code)


@app.command()
def enqueue(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A registered job name (see `jobctl jobs`).", autocompletion=complete_job),
    args: Optional[List[str]] = typer.Argument(None, help="Arguments: JSON where they parse, strings otherwise."),
    kwarg: Optional[List[str]] = typer.Option(None, "--kwarg", "-k", help="Keyword argument key=value (repeatable)."),
    queue: Optional[str] = typer.Option(
        None, "--queue", "-q", help="Queue to use instead of the job's own.", autocompletion=complete_queue
    ),
    delay: Optional[str] = typer.Option(None, "--in", help="Run after this delay, e.g. 30s, 5m, 2h."),
    at: Optional[str] = typer.Option(None, "--at", help="Run at this ISO date-time."),
    job_id: Optional[str] = typer.Option(
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
    depends_on: Optional[List[str]] = typer.Option(
        None, "--depends-on", help="Wait for this job (id or unique prefix) to finish (repeatable)."
    ),
    allow_failure: bool = typer.Option(False, "--allow-failure", help="With --depends-on: run even if a parent dies."),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the job to its end with a progress bar; exit 1 if it dies."
    ),
    from_file: Optional[str] = typer.Option(
        None,
        "--from",
        help='Enqueue one job per line of this JSON-lines file ({"args": [...], "kwargs": {...}}; - for stdin).',
    ),
    skip: int = typer.Option(
        0, "--skip", min=0, help="With --from: skip the first N jobs (to resume an interrupted --from)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
):
    """Put a registered job on its queue, now, later or after other jobs; print its id.

    Example: jobctl enqueue channel_sync UC5g8GxrZysRS2dAb4yieC9o --in 5m
    """
    from .keys import JOB_ID
    from .producer import ID_EXPECTED, DuplicateJob, enqueue as put

    settings: Settings = ctx.obj
    if from_file is not None:
        if args or kwarg or delay or at or job_id or unique or depends_on or allow_failure or wait:
            raise UsageError("--from: give the arguments in the file; only --queue, --skip and --json go with it")
        settings.load_jobs()
        _enqueue_from(settings, job, from_file, queue, skip, as_json)
        return
    if skip:
        raise UsageError("--skip without --from: it skips lines of a --from file")
    if allow_failure and not depends_on:
        raise UsageError("--allow-failure without --depends-on: it says whether a job runs after a parent dies")
    if job_id is not None and not JOB_ID.fullmatch(job_id):
        raise UsageError(f"--job-id {job_id[:60]!r}: {ID_EXPECTED}")
    settings.load_jobs()
    kwargs = parse_kwargs(kwarg or [])
    values = [parse_value(a) for a in args or []]
    run_at = parse_run_at(delay, at, time.time())
    parents = [api.resolve_job_id(settings.connection, parent, "--depends-on") for parent in depends_on or []]
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
        )
    except DuplicateJob as duplicate:
        if as_json:
            _print_json({"id": duplicate.job_id, "state": duplicate.state, "duplicate": True})
        else:
            errors.print(f"jobctl: not enqueued: {duplicate}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    if not wait:
        if as_json:
            _print_json(api.job(settings.connection, queued.id).to_dict())
        else:
            console.print(queued.id, highlight=False)
        return
    if not as_json:
        console.print(queued.id, highlight=False)  # first: a Ctrl-C or a lost terminal does not lose it
    try:
        final = views.follow(settings.connection, queued.id, _notes(settings))
    except KeyboardInterrupt:
        errors.print(
            f"jobctl: stopped following {queued.id}; the job goes on. Follow it with "
            f"`jobctl show {queued.id}` or `jobctl logs {queued.id} --follow`",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    if as_json:
        _print_json(final.to_dict())
    else:
        console.print(views.job_table(final))
    raise typer.Exit(0 if final.state == "finished" else 1)


class _Interrupted(Exception):
    """SIGINT or SIGTERM during `enqueue --from`, raised between two stored batches."""


def _enqueue_from(settings: Settings, job: str, source: str, queue: str | None, skip: int, as_json: bool) -> None:
    """`enqueue --from`: every line checked first, then stored in atomic batches with a progress
    bar. SIGINT/SIGTERM stop it between two batches and say how to resume."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .errors import RedisOutOfMemory
    from .producer import calls_from_json_lines, enqueue_many

    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--from {source}: cannot read: {exc.strerror}") from None
    with stream:
        calls = calls_from_json_lines(stream, "stdin" if source == "-" else source, job)[skip:]
    stored_count, stop_signal = skip, []
    started = time.monotonic()

    def on_batch(count: int) -> None:
        nonlocal stored_count
        stored_count += count
        bar.advance(task, count)
        if stop_signal:
            raise _Interrupted

    def resume_hint() -> str:
        return f"resume with: jobctl enqueue {job} --from {source} --skip {stored_count}"

    previous = {
        signum: signal.signal(signum, lambda signum, frame: stop_signal.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with Progress(
            TextColumn("enqueue"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("enqueue", total=len(calls))
            stored = enqueue_many(settings.connection, settings.queues, job, calls, queue=queue, on_batch=on_batch)
    except _Interrupted:
        errors.print(
            f"jobctl: {signal.Signals(stop_signal[0]).name}: stored {stored_count} of {skip + len(calls)} jobs "
            f"from {source}; {resume_hint()}",
            highlight=False,
            soft_wrap=True,
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
        _print_json({"job": job, "stored": len(stored), "seconds": round(elapsed, 3), "ids": [j.id for j in stored]})
    else:
        queue_name = stored[0].queue if stored else (queue or "-")
        console.print(f"stored {len(stored)} {job} jobs on {queue_name} in {elapsed:.2f}s", highlight=False)


@app.command()
def status(
    ctx: typer.Context,
    live: bool = typer.Option(False, "--live", help="Keep a live view open; q or Ctrl-C to leave."),
    interval: Optional[float] = typer.Option(
        None, "--interval", min=0.1, help="Seconds between refreshes of --live [default: 1]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the same data as JSON."),
):
    """Queues (counts per state, throughput, error rate, latency), workers and their jobs,
    recent failures, and the scheduler's next runs.

    Example: jobctl status --json | jq '.queues[] | {name, queued, dead, latency_seconds}'
    """
    settings: Settings = ctx.obj
    if live and as_json:
        raise UsageError("--live and --json: the live view is for a terminal; --json prints the data once")
    if interval is not None and not live:
        raise UsageError("--interval without --live: it sets how often the live view refreshes")
    connection, config = settings.connection, settings.queues
    if as_json:
        _print_json(api.overview(connection, config).to_dict())
    elif live:
        try:
            views.live_status(lambda: api.overview(connection, config), console, interval or 1.0)
        except KeyboardInterrupt:
            pass
    else:
        console.print(views.status_tables(api.overview(connection, config), width=console.width))


@app.command()
def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job id `enqueue` printed, or a unique prefix of it (6+ characters)."),
    all_attempts: bool = typer.Option(False, "--all", help="The traceback of every attempt, not only the last."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
):
    """Everything about one job: state, arguments, attempts and errors, timings across retries,
    result, the last traceback, its dependency graph (parents, children, children canceled
    because a parent died) and the tail of what it printed.

    Example: jobctl show 0b5c9c1e --all
    """
    settings: Settings = ctx.obj
    connection = settings.connection
    detail = api.job_detail(connection, api.resolve_job_id(connection, job_id), settings.queues.pickle_queues)
    if as_json:
        _print_json(detail.to_dict())
    else:
        console.print(views.job_detail_view(detail, all_attempts))


@app.command()
def logs(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job id, or a unique prefix of it (6+ characters)."),
    attempt: Optional[int] = typer.Option(None, "--attempt", "-a", min=1, help="Only this attempt [default: all]."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing the latest attempt's output until the job ends."
    ),
):
    """What a job printed (stdout, stderr) and logged, per attempt: the last 64 KB of each.

    Example: jobctl logs 0b5c9c1e --follow
    """
    from . import joboutput

    settings: Settings = ctx.obj
    connection = settings.connection
    job = api.job(connection, api.resolve_job_id(connection, job_id))
    if attempt is not None and attempt > max(job.attempts, 1):
        raise UsageError(f"--attempt {attempt}: job {job.id} has had {job.attempts} attempt(s)")
    numbers = [attempt] if attempt else list(range(1, job.attempts + 1))
    notes = _notes(settings)
    seen = {}
    for output in joboutput.read(connection, job.id, numbers):
        notes.print(
            f"--- attempt {output.attempt}" + (f" ({output.dropped} earlier bytes not kept)" if output.dropped else ""),
            highlight=False,
        )
        sys.stdout.write(output.text)
        sys.stdout.flush()
        seen[output.attempt] = output.written
    if follow:
        try:
            views.follow_output(
                connection, job.id, attempt or max(job.attempts, 1), seen, notes, fixed=attempt is not None
            )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


@app.command()
def stats(
    ctx: typer.Context,
    job: Optional[str] = typer.Option(None, "--job", "-j", help="Only this job type.", autocompletion=complete_job),
    queue: Optional[str] = typer.Option(
        None, "--queue", "-q", help="Only this queue (and the job types run on it).", autocompletion=complete_queue
    ),
    recent: int = typer.Option(10, "--recent", min=0, help="How many recent executions to list."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """What job tracking recorded: runs, successes, failures, error rate, p50/p95/max run time,
    last run, last error, and the recent executions with their parameters and outcome.

    Example: jobctl stats --job channel_sync --json | jq '.jobs[0] | {runs, error_rate, p95_run_seconds}'
    """
    from . import registry

    settings: Settings = ctx.obj
    settings.load_jobs()
    names = [spec.name for spec in registry.all_jobs()]
    found = api.stats(settings.connection, settings.queues, names, job=job, queue=queue, recent=recent)
    if as_json:
        _print_json(found.to_dict())
    else:
        console.print(views.stats_tables(found, recent))


@app.command()
def metrics(
    ctx: typer.Context,
    port: int = typer.Option(9121, "--port", "-p", min=0, max=65535, help="Port to serve /metrics on."),
    host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
):
    """Serve Prometheus metrics on /metrics, read from Redis at each scrape (queue depth per
    state, jobs processed, run-time histogram, retries, workers busy/idle, latency).

    Example: jobctl metrics --port 9121 --host 127.0.0.1
    """
    from . import metrics as exporter

    settings: Settings = ctx.obj
    settings.load_jobs()
    settings.connection  # fail now, with one line, if Redis does not answer
    server = exporter.serve(settings.url, settings.queues, port, host)
    _notes(settings).print(
        f"jobctl: serving metrics on http://{host}:{server.port}/metrics (Ctrl-C to stop)", highlight=False
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


@app.command()
def web(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; beyond this machine, put TLS in front."
    ),
    port: int = typer.Option(9181, "--port", "-p", min=1, max=65535, help="Port to listen on."),
    read_only: bool = typer.Option(False, "--read-only", help="Show everything, allow no action (they answer 403)."),
):
    """The dashboard: queues, jobs, the dead set, schedules, workers and stats, live, behind a
    token (JOBCTL_WEB_TOKEN, or one generated and printed at start); a JSON API under /api.

    Example: JOBCTL_WEB_TOKEN=$(openssl rand -hex 16) jobctl web --port 9181
    """
    from .web import serve

    serve(ctx.obj, host, port, read_only=read_only)


@app.command(name="requeue-dead")
def requeue_dead(
    ctx: typer.Context,
    queue: Optional[List[str]] = typer.Option(
        None, "--queue", "-q", help="Only dead jobs of this queue (repeatable).", autocompletion=complete_queue
    ),
    job_id: Optional[List[str]] = typer.Option(
        None, "--job-id", help="Only this dead job, id or unique prefix (repeatable)."
    ),
    all_queues: bool = typer.Option(False, "--all", help="Every dead job of every configured queue."),
    older_than: Optional[str] = typer.Option(
        None, "--older-than", help="Only jobs dead for longer than this, e.g. 1h."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be requeued; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the requeued ids as JSON."),
):
    """Move dead jobs (retries exhausted, permanent errors) back onto their queues, with a fresh retry budget.

    Example: jobctl requeue-dead --queue analytics --dry-run
    """
    from . import admin

    settings: Settings = ctx.obj
    if not (queue or job_id or all_queues):
        raise UsageError("requeue-dead: say which jobs: --queue Q, --job-id ID or --all")
    queues = [q.name for q in settings.queues.select(queue)] if (queue or all_queues) else []
    age = _duration_option("--older-than", older_than) if older_than else None
    connection = settings.connection
    named = [api.job(connection, api.resolve_job_id(connection, given, "--job-id")) for given in job_id or []]
    alive = [j for j in named if j.state != "dead"]
    if alive:  # nothing is requeued when one of the jobs named is not dead
        raise OperationFailed(
            "requeue-dead: " + "; ".join(f"job {j.id} is {j.state}, not dead" for j in alive) + "; nothing requeued"
        )
    requeued = admin.requeue_dead(connection, queues, [j.id for j in named], older_than=age, dry_run=dry_run)
    if as_json:
        _print_json({"dry_run": dry_run, "requeued": [{"id": j.id, "job": j.job, "queue": j.queue} for j in requeued]})
        return
    for j in requeued:
        line = j.id if settings.quiet else f"{'would requeue' if dry_run else 'requeued'} {j.id} {j.job} [{j.queue}]"
        console.print(line, highlight=False)
    if not settings.quiet:
        console.print(f"{len(requeued)} dead job(s) {'would be ' if dry_run else ''}requeued", highlight=False)


@app.command()
def scheduler(
    ctx: typer.Context,
    list_only: bool = typer.Option(False, "--list", help="Print each entry and its next three run times, then exit."),
    as_json: bool = typer.Option(False, "--json", help="With --list: print as JSON."),
):
    """The daemon that enqueues recurring.yml's entries, and jobs declared with @job(cron=...), when
    they are due, once per due time however many schedulers run (SIGHUP reloads the file, SIGTERM
    stops); --list prints each entry's next runs.

    Example: jobctl scheduler --list
    """
    settings: Settings = ctx.obj
    if as_json and not list_only:
        raise UsageError(
            "--json without --list: only the --list of entries prints JSON; the daemon logs (--log-format json)"
        )
    entries = settings.recurring()
    if list_only:
        now = datetime.now().astimezone()
        rows = [(entry, entry.schedule.next_runs(now, 3)) for entry in entries]
        if as_json:
            _print_json(
                [
                    {
                        "name": e.name,
                        "job": e.job,
                        "queue": e.queue,
                        "schedule": e.schedule.text,
                        "timezone": e.timezone,
                        "enabled": e.enabled,
                        "next_runs": [t.isoformat() for t in runs],
                    }
                    for e, runs in rows
                ]
            )
        else:
            console.print(views.recurring_table(rows))
        return
    from . import logs
    from .config import load_recurring
    from .scheduler import Scheduler

    logs.setup(settings.verbose)

    def load() -> list:  # a missing file is an error, at start and on SIGHUP, unless jobs declare cron=
        return load_recurring(settings.recurring_path, settings.queues, required=True)

    entries = load()
    connection = settings.connection  # fail now, with one line, if Redis does not answer
    raise typer.Exit(Scheduler(connection, settings.url, settings.queues, entries, load, settings.recurring_path).run())


@app.command()
def jobs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The registered job names, their queues and signatures.

    Example: JOBCTL_JOBS=myapp.jobs jobctl jobs
    """
    from rich.table import Table

    from . import registry

    from .events import subscriptions

    settings: Settings = ctx.obj
    settings.load_jobs()
    specs = registry.all_jobs()
    events_of: dict[str, list[str]] = {}
    for event, handlers in subscriptions().items():
        for handler in handlers:
            events_of.setdefault(handler, []).append(event)
    if as_json:
        _print_json(
            [
                {
                    "name": s.name,
                    "queue": s.queue,
                    "signature": s.signature,
                    "module": s.module,
                    "events": events_of.get(s.name, []),
                }
                for s in specs
            ]
        )
        return
    table = Table(title="Registered jobs", title_justify="left")
    for column in ("job", "queue", "signature", "module"):
        table.add_column(column)
    for s in specs:
        table.add_row(s.name, s.queue, s.signature, s.module)
    console.print(table)
    if events_of:
        handlers_table = Table(title="Event subscriptions (jobctl emit EVENT)", title_justify="left")
        for column in ("event", "handler job", "queue"):
            handlers_table.add_column(column)
        for event, handlers in subscriptions().items():
            for handler in handlers:
                handlers_table.add_row(event, handler, registry.get(handler).queue)
        console.print(handlers_table)


@app.command()
def emit(
    ctx: typer.Context,
    event: str = typer.Argument(..., help="The event name, as given to @on(...)."),
    payload: Optional[str] = typer.Argument(
        None, help="The payload, JSON (default {}); each handler gets it as its argument."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the enqueued jobs as JSON."),
):
    """Enqueue one job per handler subscribed to EVENT (with @on), the payload as its argument;
    print their ids. An event without handlers is an error (exit 2).

    Example: jobctl emit user.signup '{"user_id": 42, "email": "ada@example.com"}'
    """
    from . import events

    settings: Settings = ctx.obj
    settings.load_jobs()
    value = None
    if payload is not None:
        try:
            value = json.loads(payload)
        except ValueError as exc:
            raise UsageError(
                f"emit: payload {payload[:60]!r} is not JSON ({exc}); expected e.g. '{{\"user_id\": 42}}'"
            ) from None
    enqueued = events.emit(settings.connection, settings.queues, event, value)
    if as_json:
        _print_json(
            {"event": event, "jobs": [{"id": e.id, "job": e.job, "queue": e.queue, "state": e.state} for e in enqueued]}
        )
    else:
        for e in enqueued:
            console.print(e.id, highlight=False)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for in the uploaded documents."),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Only this collection."),
    top: int = typer.Option(5, "--top", "-n", min=1, help="How many chunks to return."),
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
    if not hits:
        where = f" in collection {collection!r}" if collection else ""
        console.print(
            f"no match for {query!r}{where} (documents are added with `jobctl enqueue upload PATH`)", highlight=False
        )
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


# --- operations: health, config, queue and job administration -----------------------------------


@app.command()
def health(
    ctx: typer.Context,
    name: Optional[str] = typer.Option(
        None, "--name", help="Check the workers of this supervisor (its name in `status`) instead of this host's."
    ),
    redis_only: bool = typer.Option(
        False,
        "--redis-only",
        help="Only check that Redis answers (for hosts that run no workers: scheduler, producers).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
):
    """For container and load-balancer probes: exit 0 when Redis answers and this host's workers
    sent a heartbeat in the last 30 s, 1 otherwise, with one line saying why.

    Example: jobctl health || echo "jobctl workers on $(hostname) are down"
    """
    from . import admin

    settings: Settings = ctx.obj
    report = admin.health(lambda: settings.connection, supervisor=name, redis_only=redis_only)
    if as_json:
        _print_json(report.to_dict())
    elif report.healthy:
        if not settings.quiet:
            console.print(f"healthy: {report.reason}", highlight=False, markup=False)
    else:
        errors.print(f"jobctl: unhealthy: {report.reason}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(0 if report.healthy else 1)


@app.command(name="config")
def show_config(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The effective configuration (Redis URL, files, job modules, every queue setting, recurring
    entries) and where each value came from: flag, env, file or default. Passwords are masked.

    Example: jobctl config --json | jq '.queues[] | {name, workers: .settings.worker_count.value}'
    """
    from rich.table import Table

    settings: Settings = ctx.obj
    effective = settings.effective()
    if as_json:
        _print_json(effective)
        return
    general = Table(title="Configuration", title_justify="left")
    for column in ("setting", "value", "source"):
        general.add_column(column)
    for key in ("redis_url", "config", "recurring", "jobs", "database_url"):
        entry = effective[key]
        value = "-" if entry["value"] is None else entry["value"]
        if entry.get("exists") is False:
            value += " (absent)"
        general.add_row(key, value, entry["source"])
    queues = Table(title="Queues", title_justify="left")
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
    console.print(general, queues)
    if effective["recurring_entries"]:
        recurring = Table(title="Recurring entries", title_justify="left")
        for column in ("name", "job", "queue", "schedule", "timezone", "enabled"):
            recurring.add_column(column)
        for e in effective["recurring_entries"]:
            recurring.add_row(
                e["name"], e["job"], e["queue"], e["schedule"], e["timezone"], "yes" if e["enabled"] else "no"
            )
        console.print(recurring)


def _configured_queues(settings: Settings, names: list[str], command: str) -> list[str]:
    for name in names:
        if name not in settings.queues.queues:
            raise UsageError(
                f"{command}: queue {name!r} is not configured in {settings.queues.path} "
                f"(configured: {', '.join(settings.queues.queues)})"
            )
    return names


def _set_paused(settings: Settings, queues: list[str], paused: bool) -> None:
    from . import admin

    command = "pause" if paused else "resume"
    names = _configured_queues(settings, queues, command)
    changed = (admin.pause if paused else admin.resume)(settings.connection, names)
    unchanged = "was already paused" if paused else "was not paused"
    for name in names:
        _notes(settings).print(f"{command}d {name}" if name in changed else f"{name} {unchanged}", highlight=False)


@app.command()
def pause(
    ctx: typer.Context,
    queues: List[str] = typer.Argument(..., help="Queue(s) to pause.", autocompletion=complete_queue),
):
    """Stop workers fetching from queues (within a second; running jobs finish). Jobs can still be
    enqueued and wait; `status` shows the queue paused until `jobctl resume`.

    Example: jobctl pause analytics
    """
    _set_paused(ctx.obj, queues, paused=True)


@app.command()
def resume(
    ctx: typer.Context,
    queues: List[str] = typer.Argument(..., help="Queue(s) to resume.", autocompletion=complete_queue),
):
    """Let workers fetch from paused queues again.

    Example: jobctl resume analytics
    """
    _set_paused(ctx.obj, queues, paused=False)


@app.command()
def cancel(
    ctx: typer.Context,
    job_ids: List[str] = typer.Argument(
        ..., help="Id(s), or unique prefixes, of queued, scheduled, deferred or running jobs."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
):
    """Cancel jobs; their deferred dependents are canceled with them. A running job is stopped:
    its worker raises an exception inside it (its `finally` blocks run) and it ends canceled;
    cancel waits up to 10 s for that. Exits 1 for a job that had already ended.

    Example: jobctl cancel 0b5c9c1e-1f0a-4c1e-9a57-2f1c4e3b2a10
    """
    from . import admin

    settings: Settings = ctx.obj
    connection = settings.connection
    outcomes, exit_code = [], 0
    for given in job_ids:
        try:
            job_id = api.resolve_job_id(connection, given)
        except JobctlError as exc:  # reported, and the other ids are still handled
            exit_code = max(exit_code, exc.exit_code)
            outcomes.append(admin.Cancellation(given, None, False, error=str(exc)))
            if not as_json:
                errors.print(f"jobctl: cannot cancel {given}: {exc}", highlight=False, soft_wrap=True)
            continue
        outcome = admin.cancel(connection, job_id)
        outcomes.append(outcome)
        if as_json:
            exit_code = exit_code or (0 if outcome.canceled or outcome.now in ("canceled", "started") else 1)
            continue
        if outcome.canceled:
            also = f"; canceled with it: {', '.join(outcome.dependents)}" if outcome.dependents else ""
            how = "stopped while running" if outcome.state == "started" else f"was {outcome.state}"
            console.print(
                job_id if settings.quiet else f"canceled {job_id} ({how}){also}", highlight=False, soft_wrap=True
            )
        elif outcome.state == "canceled":
            _notes(settings).print(f"{job_id} was already canceled", highlight=False)
        elif outcome.now == "started":
            _notes(settings).print(
                f"asked the worker of {job_id} to stop it; it has not stopped yet (a job stuck "
                "outside Python is killed with its worker after a grace period)",
                highlight=False,
            )
        else:
            exit_code = max(exit_code, 1)
            why = f"it already ended ({outcome.now})"
            errors.print(f"jobctl: cannot cancel {job_id}: {why}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        _print_json([outcome.to_dict() for outcome in outcomes])
    raise typer.Exit(exit_code)  # 2 when an id was unknown or ambiguous, else 1 when a job could not be canceled


def _complete_purge_state(incomplete: str) -> list[str]:
    from .admin import PURGEABLE

    return [state for state in PURGEABLE if state.startswith(incomplete)]


@app.command()
def purge(
    ctx: typer.Context,
    queue: str = typer.Argument(..., help="The queue whose ended jobs to delete.", autocompletion=complete_queue),
    state: str = typer.Option(..., "--state", help="finished, dead or canceled.", autocompletion=_complete_purge_state),
    older_than: str = typer.Option(
        ..., "--older-than", help="Only jobs that ended longer ago than this: 7d, 12h, 0s (all)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed without a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
):
    """Delete a queue's finished, dead or canceled jobs that ended longer ago than --older-than:
    their records, results and registry entries. Asks for confirmation unless --yes.

    Example: jobctl purge analytics --state dead --older-than 7d --dry-run
    """
    from . import admin
    from .durations import parse_duration

    settings: Settings = ctx.obj
    if state not in admin.PURGEABLE:
        raise UsageError(f"--state {state!r}: expected {', '.join(admin.PURGEABLE)}")
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than {older_than!r}: {exc}") from None
    _configured_queues(settings, [queue], "purge")
    if not (dry_run or yes or sys.stdin.isatty()):
        raise UsageError("purge: no terminal to confirm on; pass --yes to delete (or --dry-run to count)")
    connection = settings.connection
    cutoff = time.time() - age
    ended_before = datetime.fromtimestamp(cutoff).astimezone().isoformat(timespec="seconds")
    what = f"{state} job(s) of queue {queue!r} that ended before {ended_before}"
    count = admin.purge(connection, queue, state, cutoff, dry_run=True) if (dry_run or not yes) else None
    if not dry_run and count != 0:
        if not yes and not typer.confirm(f"Delete {count} {what}?", default=False):
            errors.print("jobctl: purge not confirmed; nothing deleted", highlight=False)
            raise typer.Exit(1)
        count = admin.purge(connection, queue, state, cutoff, dry_run=False)
    if as_json:
        _print_json(
            {
                "queue": queue,
                "state": state,
                "ended_before": cutoff,
                "dry_run": dry_run,
                "would_delete" if dry_run else "deleted": count,
            }
        )
    elif settings.quiet:
        console.print(str(count))
    else:
        console.print(f"{'would delete' if dry_run else 'deleted'} {count} {what}", highlight=False)


def global_options_first(argv: list[str]) -> list[str]:
    """`jobctl status --quiet` read as `jobctl --quiet status`: the global options (--quiet,
    --verbose, --redis-url, --config, ...) may also follow the command, as in git or kubectl."""
    takes_value = {}
    for param in typer.main.get_command(app).params:
        for option in param.opts:
            takes_value[option] = not getattr(param, "is_flag", False)
    command = None
    index = 0
    while index < len(argv) and command is None:
        token = argv[index]
        if token == "--" or not token.startswith("-"):
            command = index if token != "--" else None
            break
        index += 2 if takes_value.get(token) else 1
    if command is None:
        return argv
    hoisted, rest, index = [], [], command + 1
    while index < len(argv):
        token = argv[index]
        if token == "--":
            rest += argv[index:]
            break
        name = token.split("=", 1)[0]
        if name in takes_value:
            width = 2 if takes_value[name] and "=" not in token else 1
            hoisted += argv[index : index + width]
            index += width
        else:
            rest.append(token)
            index += 1
    return argv[:command] + hoisted + [argv[command]] + rest


def main() -> None:
    try:
        app(args=global_options_first(sys.argv[1:]), prog_name="jobctl")
    except JobctlError as exc:
        errors.print(f"jobctl: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except redis.ConnectionError as exc:
        from .connection import unavailable_reason

        errors.print(
            f"jobctl: error: lost the connection to Redis: {unavailable_reason(exc)}", highlight=False, markup=False
        )
        sys.exit(2)
