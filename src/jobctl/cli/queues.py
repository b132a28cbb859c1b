"""Queues and their operation: status, stats, health, pause, resume, purge, requeue-dead."""

import sys
import time
from datetime import datetime

import typer

from ..config.settings import Settings
from ..errors import OperationFailed, UsageError
from .common import (
    complete_job,
    complete_queue,
    configured_queues,
    console,
    duration_option,
    fail,
    notes,
    print_json,
    print_json_list,
    say,
    say_lines,
)


def status(
    ctx: typer.Context,
    live: bool = typer.Option(False, "--live", help="Keep a live view open; q or Ctrl-C to leave."),
    interval: float | None = typer.Option(
        None, "--interval", min=0.1, help="Seconds between refreshes of --live [default: 1]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the same data as JSON."),
) -> None:
    """Queues (counts per state, throughput, error rate, latency), workers and their jobs,
    recent failures, and the scheduler's next runs.

    Example: jobctl status --json | jq '.queues[] | {name, queued, dead, latency_seconds}'
    """
    # imported here, not at start-up: only this command needs it
    from ..api import reads

    settings: Settings = ctx.obj
    if live and as_json:
        raise UsageError("--live and --json: the live view is for a terminal; --json prints the data once")
    if interval is not None and not live:
        raise UsageError("--interval without --live: it sets how often the live view refreshes")
    connection, config = settings.connection, settings.queues
    if as_json:
        print_json(reads.overview(connection, config).to_dict())
        return
    # imported here, not at start-up: only this command needs it
    from . import views

    if live:
        views.live_status(lambda: reads.overview(connection, config), console(), interval or 1.0)
    else:
        console().print(views.status_tables(reads.overview(connection, config), width=console().width))


def stats(
    ctx: typer.Context,
    job: str | None = typer.Option(None, "--job", "-j", help="Only this job type.", autocompletion=complete_job),
    queue: str | None = typer.Option(
        None, "--queue", "-q", help="Only this queue (and the job types run on it).", autocompletion=complete_queue
    ),
    recent: int = typer.Option(10, "--recent", min=0, help="How many recent executions to list."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """What job tracking recorded: runs, successes, failures, error rate, p50/p95/max run time,
    last run, last error, and the recent executions with their parameters and outcome.

    Example: jobctl stats --job channel_sync --json | jq '.jobs[0] | {runs, error_rate, p95_run_seconds}'
    """
    # imported here, not at start-up: only this command needs it
    from ..api import jobstats
    from ..jobs import catalogue

    settings: Settings = ctx.obj
    settings.load_jobs()
    names = [spec.name for spec in catalogue.all_jobs()]
    found = jobstats.stats(settings.connection, settings.queues, names, job=job, queue=queue, recent=recent)
    if as_json:
        print_json(found.to_dict())
    else:
        # imported here, not at start-up: only this command needs it
        from . import views

        console().print(views.stats_tables(found, recent))


def health(
    ctx: typer.Context,
    name: str | None = typer.Option(
        None, "--name", help="Check the workers of this supervisor (its name in `status`) instead of this host's."
    ),
    redis_only: bool = typer.Option(
        False,
        "--redis-only",
        help="Only check that Redis answers (for hosts that run no workers: scheduler, producers).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """For container and load-balancer probes: exit 0 when Redis answers and this host's workers
    sent a heartbeat within their lease (20 s, JOBCTL_LEASE_TTL), 1 otherwise, with one line
    saying why.

    Example: jobctl health || echo "jobctl workers on $(hostname) are down"
    """
    # imported here, not at start-up: only this command needs it
    from ..api import admin

    settings: Settings = ctx.obj
    report = admin.health(
        lambda: settings.connection, lease_ttl=settings.lease_ttl, supervisor=name, redis_only=redis_only
    )
    if as_json:
        print_json(report.to_dict())
    elif report.healthy:
        if not settings.quiet:
            say(f"healthy: {report.reason}")
    else:
        fail(f"unhealthy: {report.reason}")
    raise typer.Exit(0 if report.healthy else 1)


def _set_paused(settings: Settings, queues: list[str], paused: bool) -> None:
    # imported here, not at start-up: only this command needs it
    from ..api import admin

    command = "pause" if paused else "resume"
    configured_queues(settings, queues, command)
    changed = (admin.pause if paused else admin.resume)(settings.connection, queues)
    unchanged = "was already paused" if paused else "was not paused"
    for name in queues:
        notes(settings).print(f"{command}d {name}" if name in changed else f"{name} {unchanged}", highlight=False)


def pause(
    ctx: typer.Context,
    queues: list[str] = typer.Argument(..., help="Queue(s) to pause.", autocompletion=complete_queue),
) -> None:
    """Stop workers fetching from queues (within a second; running jobs finish). Jobs can still be
    enqueued and wait; `status` shows the queue paused until `jobctl resume`.

    Example: jobctl pause analytics
    """
    _set_paused(ctx.obj, queues, paused=True)


def resume(
    ctx: typer.Context,
    queues: list[str] = typer.Argument(..., help="Queue(s) to resume.", autocompletion=complete_queue),
) -> None:
    """Let workers fetch from paused queues again.

    Example: jobctl resume analytics
    """
    _set_paused(ctx.obj, queues, paused=False)


def _complete_purge_state(incomplete: str) -> list[str]:
    # imported here, not at start-up: only this command needs it
    from ..api.admin import PURGEABLE

    return [state for state in PURGEABLE if state.startswith(incomplete)]


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
) -> None:
    """Delete a queue's finished, dead or canceled jobs that ended longer ago than --older-than:
    their records, results and registry entries. Asks for confirmation unless --yes.

    Example: jobctl purge analytics --state dead --older-than 7d --dry-run
    """
    # imported here, not at start-up: only this command needs it
    from ..api import admin

    settings: Settings = ctx.obj
    if state not in admin.PURGEABLE:
        raise UsageError(f"--state {state!r}: expected {', '.join(admin.PURGEABLE)}")
    age = duration_option("--older-than", older_than)
    configured_queues(settings, [queue], "purge")
    if not (dry_run or yes or sys.stdin.isatty()):
        raise UsageError("purge: no terminal to confirm on; pass --yes to delete (or --dry-run to count)")
    connection = settings.connection
    cutoff = time.time() - age
    ended_before = datetime.fromtimestamp(cutoff).astimezone().isoformat(timespec="seconds")
    what = f"{state} job(s) of queue {queue!r} that ended before {ended_before}"
    count = admin.purge(connection, queue, state, cutoff, dry_run=True) if (dry_run or not yes) else None
    if not dry_run and count != 0:
        if not yes and not typer.confirm(f"Delete {count} {what}?", default=False):
            fail("purge not confirmed; nothing deleted")
            raise typer.Exit(1)
        count = admin.purge(connection, queue, state, cutoff, dry_run=False)
    if as_json:
        print_json(
            {
                "queue": queue,
                "state": state,
                "ended_before": cutoff,
                "dry_run": dry_run,
                "would_delete" if dry_run else "deleted": count,
            }
        )
    elif settings.quiet:
        console().print(str(count))
    else:
        say(f"{'would delete' if dry_run else 'deleted'} {count} {what}")


def requeue_dead(
    ctx: typer.Context,
    queue: list[str] | None = typer.Option(
        None, "--queue", "-q", help="Only dead jobs of this queue (repeatable).", autocompletion=complete_queue
    ),
    job_id: list[str] | None = typer.Option(
        None, "--job-id", help="Only this dead job, id or unique prefix (repeatable)."
    ),
    all_queues: bool = typer.Option(False, "--all", help="Every dead job of every configured queue."),
    older_than: str | None = typer.Option(None, "--older-than", help="Only jobs dead for longer than this, e.g. 1h."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be requeued; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the requeued ids as JSON."),
) -> None:
    """Move dead jobs (retries exhausted, permanent errors) back onto their queues, with a fresh retry budget.

    Example: jobctl requeue-dead --queue analytics --dry-run
    """
    # imported here, not at start-up: only this command needs it
    from ..api import admin, records

    settings: Settings = ctx.obj
    if not (queue or job_id or all_queues):
        raise UsageError("requeue-dead: say which jobs: --queue Q, --job-id ID or --all")
    queues = [q.name for q in settings.queues.select(queue)] if (queue or all_queues) else []
    age = duration_option("--older-than", older_than) if older_than else None
    connection = settings.connection
    named = [records.job(connection, records.resolve_job_id(connection, given, "--job-id")) for given in job_id or []]
    alive = [j for j in named if j.state != "dead"]
    if alive:  # nothing is requeued when one of the jobs named is not dead
        raise OperationFailed(
            "requeue-dead: " + "; ".join(f"job {j.id} is {j.state}, not dead" for j in alive) + "; nothing requeued"
        )
    batches = admin.requeue_dead_batches(
        connection, queues, [j.id for j in named], older_than=age, dry_run=dry_run
    )  # printed as they come: --all may mean millions of jobs
    if as_json:
        requeued = ({"id": j.id, "job": j.job, "queue": j.queue} for batch in batches for j in batch)
        print_json_list({"dry_run": dry_run}, "requeued", requeued)
        return
    count = 0
    for batch in batches:
        count += len(batch)
        verb = "would requeue" if dry_run else "requeued"
        say_lines(j.id if settings.quiet else f"{verb} {j.id} {j.job} [{j.queue}]" for j in batch)
    if not settings.quiet:
        say(f"{count} dead job(s) {'would be ' if dry_run else ''}requeued")
