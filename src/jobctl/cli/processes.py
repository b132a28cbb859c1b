"""What runs until it is stopped (work, scheduler, metrics, web, demo), and init, which sets up the
project they run in."""

import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .. import logs
from ..config.settings import Settings
from ..errors import UsageError
from .common import complete_queue, console, errors, notes, print_json

if TYPE_CHECKING:
    from ..web.metrics import MetricsServer


def init(
    directory: str = typer.Argument(".", help="Where to write the files (created if needed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
) -> None:
    """Start a project: write a commented queue.yml, recurring.yml and example_jobs.py (a plain
    job, an async one, one that reports progress). Never overwrites without --force.

    Example: jobctl init myproject && cd myproject && JOBCTL_JOBS=example_jobs jobctl work
    """
    # imported here, not at start-up: only this command needs it
    from .scaffold import write_project

    written = write_project(directory, force=force)
    for path in written:
        console().print(f"wrote {path}", highlight=False)
    here = written[0].parent
    cd = "" if here == Path.cwd().resolve() else f"cd {here} && "
    errors().print(
        f"next: {cd}JOBCTL_JOBS=example_jobs jobctl work   (and in another terminal: "
        f"{cd}JOBCTL_JOBS=example_jobs jobctl enqueue hello Ada --wait)",
        highlight=False,
        soft_wrap=True,
    )


def work(
    ctx: typer.Context,
    queue: list[str] | None = typer.Option(
        None,
        "--queue",
        "-q",
        autocompletion=complete_queue,
        help="Serve only this queue. Repeated, the workers serve all the named queues together "
        "(by weight where weights are set, else in priority order).",
    ),
    burst: bool = typer.Option(False, "--burst", help="Drain the queues (and retries due soon), then exit 0."),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Also serve Prometheus /metrics on this port, to scrapes that send $JOBCTL_METRICS_TOKEN.",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="Address for --metrics-port (0.0.0.0: every interface)."
    ),
    metrics_no_auth: bool = typer.Option(
        False,
        "--metrics-no-auth",
        help="Serve --metrics-port without a token (only on a loopback --metrics-host: this host's scrapers).",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="This supervisor's name, for several on one host (default host.pid); `health --name` checks it.",
    ),
    statsd: str | None = typer.Option(
        None,
        "--statsd",
        envvar="JOBCTL_STATSD",
        show_envvar=True,
        help="Send per-job timings and counters to StatsD at host:port (prefix: JOBCTL_STATSD_PREFIX, default jobctl).",
    ),
) -> None:
    """Start the configured worker processes per queue and supervise them.

    Example: jobctl work --queue default --queue analytics --metrics-port 9121
    """
    # imported here, not at start-up: only this command needs it
    from ..runtime.supervisor import Supervisor

    settings: Settings = ctx.obj
    logs.setup(settings.verbose)
    if metrics_no_auth and metrics_port is None:
        raise UsageError("--metrics-no-auth without --metrics-port: there is no exporter to serve without a token")
    metrics_token = None
    if metrics_port is not None:  # read before anything starts: a missing token is one line, exit 2
        # imported here, not at start-up: only this command needs it
        from ..web import metrics

        metrics_token = metrics.token_from_environment(metrics_host, no_auth=metrics_no_auth, flag="--metrics-no-auth")
    try:
        settings.use_statsd(statsd)
    except ValueError as exc:
        raise UsageError(f"--statsd / JOBCTL_STATSD: {exc}") from None
    settings.load_jobs()
    queues = settings.queues.select(queue)
    if len(queue or []) > 1:
        # imported here, not at start-up: only this command needs it
        from ..runtime.rq_engine import check_pool

        check_pool(queues)
    settings.connection  # noqa: B018 - fail now, with one line, if Redis does not answer
    supervisor = Supervisor(
        settings.url,
        queues,
        burst=burst,
        shared=len(queue or []) > 1,
        config=settings.queues,
        lease_ttl=settings.lease_ttl,
        statsd=settings.statsd,
        **({"name": name} if name else {}),
    )
    exporter = None
    if metrics_port is not None:
        exporter = _serve_metrics(settings, metrics_port, metrics_host, metrics_token, "--metrics-no-auth")
    try:
        code = supervisor.run()
    finally:
        if exporter:
            exporter.shutdown()
    raise typer.Exit(code)


def scheduler(
    ctx: typer.Context,
    list_only: bool = typer.Option(False, "--list", help="Print each entry and its next three run times, then exit."),
    as_json: bool = typer.Option(False, "--json", help="With --list: print as JSON."),
) -> None:
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
            # imported here, not at start-up: only this command needs it
            from .configview import entry_fields

            print_json([{**entry_fields(e), "next_runs": [t.isoformat() for t in runs]} for e, runs in rows])
        else:
            # imported here, not at start-up: only this command needs it
            from . import views

            console().print(views.recurring_table(rows))
        return
    # imported here, not at start-up: only this command needs it
    from ..config.queues import RecurringEntry, load_recurring
    from ..runtime.scheduler import Scheduler

    logs.setup(settings.verbose)

    def load() -> list[RecurringEntry]:  # a missing file is an error, at start and on SIGHUP, unless jobs declare cron=
        return load_recurring(settings.recurring_path, settings.queues, required=True)

    entries = load()
    connection = settings.connection  # fail now, with one line, if Redis does not answer
    raise typer.Exit(
        Scheduler(
            connection,
            settings.url,
            settings.queues,
            entries,
            load,
            settings.recurring_path,
            lease_ttl=settings.lease_ttl,
        ).run()
    )


def metrics(
    ctx: typer.Context,
    port: int = typer.Option(9121, "--port", "-p", min=0, max=65535, help="Port to serve /metrics on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without a token (only on a loopback --host: this host's scrapers)."
    ),
) -> None:
    """Serve Prometheus metrics on /metrics, read from Redis at each scrape (queue depth per
    state, jobs processed, run-time histogram, retries, workers busy/idle, latency), to scrapes
    that send the token of JOBCTL_METRICS_TOKEN (bearer token or basic auth's password).

    Example: JOBCTL_METRICS_TOKEN=$(openssl rand -hex 16) jobctl metrics --port 9121
    """
    # imported here, not at start-up: only this command needs it
    from ..web import metrics as exporter

    settings: Settings = ctx.obj
    token = exporter.token_from_environment(host, no_auth=no_auth, flag="--no-auth")
    logs.setup(settings.verbose)
    settings.load_jobs()
    settings.connection  # noqa: B018 - fail now, with one line, if Redis does not answer
    server = _serve_metrics(settings, port, host, token, "--no-auth", "; Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def _serve_metrics(
    settings: Settings, port: int, host: str, token: str | None, no_auth_flag: str, more: str = ""
) -> "MetricsServer":
    # imported here, not at start-up: only the commands that serve metrics need it
    from ..web import metrics

    server = metrics.serve(settings.url, settings.queues, port, host, token=token)
    access = f"token: ${metrics.TOKEN_ENV}" if token is not None else f"no token ({no_auth_flag})"
    notes(settings).print(f"jobctl: serving metrics on {server.url} ({access}{more})", highlight=False, soft_wrap=True)
    return server


def web(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; beyond this machine, put TLS in front."
    ),
    port: int = typer.Option(9181, "--port", "-p", min=1, max=65535, help="Port to listen on."),
    read_only: bool = typer.Option(False, "--read-only", help="Show everything, allow no action (they answer 403)."),
    allowed_hosts: str | None = typer.Option(
        None,
        "--allowed-hosts",
        envvar="JOBCTL_WEB_ALLOWED_HOSTS",
        show_envvar=True,
        help="Comma-separated host names browsers may reach the dashboard by (name.example, *.example, "
        "or * for any), besides IP addresses and localhost; other Host headers get 400.",
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        envvar="JOBCTL_WEB_FORWARDED_ALLOW_IPS",
        show_envvar=True,
        help="Comma-separated addresses or networks of your reverse proxies (or * for any): only from "
        "them are X-Forwarded-For and X-Forwarded-Proto believed. Default: from none.",
    ),
) -> None:
    """The dashboard: queues, jobs, the dead set, schedules, workers and stats, live, behind a
    token (JOBCTL_WEB_TOKEN, at least 16 characters, or one generated and printed at start); a
    JSON API under /api.

    Example: JOBCTL_WEB_TOKEN=$(openssl rand -hex 16) jobctl web --port 9181
    """
    # imported here, not at start-up: only this command needs it
    from ..web import TOKEN_ENV, parse_host_names, parse_proxy_addresses, serve

    serve(
        ctx.obj,
        host,
        port,
        read_only=read_only,
        hosts=parse_host_names(allowed_hosts),
        proxies=parse_proxy_addresses(forwarded_allow_ips),
        token=os.environ.get(TOKEN_ENV, ""),  # a secret: from the environment, never a flag (ps shows flags)
    )


def demo(ctx: typer.Context) -> None:
    """The whole system in one command: enqueue a realistic batch, run the workers until the
    queues drain, print the status tables. Uses the embedded Redis unless REDIS_URL is set.

    Example: jobctl demo
    """
    # imported here, not at start-up: only this command needs it
    from .demo import run_demo

    raise typer.Exit(run_demo(ctx.obj, console()))
