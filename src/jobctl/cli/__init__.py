"""The `jobctl` command line: thin commands that read their arguments, call into the modules and
print what they return (views.py renders it).

- cli/__init__.py: the Typer app, the global options, the command list (in --help's order) and
  the entry point `main`
- cli/jobs.py: one job at a time: enqueue, show, logs, cancel, emit, search
- cli/queues.py: queues and their operation: status, stats, health, pause, resume, purge,
  requeue-dead
- cli/processes.py: what runs until stopped, and project set-up: init, work, scheduler, metrics,
  web, demo
- cli/config.py: what is configured and registered: config, jobs
- cli/common.py: output consoles, shared option checks, shell completion

Start-up matters (`jobctl --help` in about a tenth of a second): modules import Typer and little
else at the top; each command imports what it needs (Redis, YAML, Rich) when it runs. The
command modules do without `from __future__ import annotations`: Typer reads every command's
signature on every start, and evaluating annotations written as strings took ~13 ms of it.
"""

import os
import sys

import typer

from .. import __version__, logs
from ..config.settings import DEFAULT_CONFIG, Settings
from ..errors import JobctlError, UsageError
from . import batches, config, jobs, processes, queues
from .common import console, errors, fail

app = typer.Typer(
    help="A job runner over RQ and Redis: supervised workers, retries with backoff, a dead set, cron.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_options(
    ctx: typer.Context,
    redis_url: str | None = typer.Option(
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
    recurring: str | None = typer.Option(
        None,
        "--recurring",
        envvar="JOBCTL_RECURRING",
        show_envvar=True,
        help="recurring.yml to read. [default: recurring.yml]",
    ),
    jobs: str | None = typer.Option(
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
) -> None:
    # the one settings object of this process: the flags above (with the environment variables
    # Typer read for them), then the rest of the environment, read here once
    ctx.obj = Settings.build(
        os.environ,
        redis_url=redis_url or None,
        config_path=config,
        recurring_path=recurring,
        job_modules=jobs,
        verbose=verbose,
        quiet=quiet,
        sources=_option_sources(
            ctx,
            {"redis_url": "redis_url", "config": "config_path", "recurring": "recurring_path", "jobs": "job_modules"},
        ),
    )
    import logging

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
        console().print(f"jobctl {__version__}", highlight=False)
        raise typer.Exit()


def _option_sources(ctx: typer.Context, settings_of: dict[str, str]) -> dict[str, str]:
    """Where each global option's value came from, for `jobctl config`."""
    # imported here, not at start-up: only this command needs it
    from ..config.settings import DEFAULT_SOURCE, env_source, flag_source

    sources = {}
    for param in ctx.command.params:
        if param.name in settings_of:
            # by name: Typer ships its own copy of click, with its own ParameterSource enum
            origin = getattr(ctx.get_parameter_source(param.name), "name", "DEFAULT")
            if origin == "COMMANDLINE":
                sources[settings_of[param.name]] = flag_source(param.opts[0])
            elif origin == "ENVIRONMENT":
                sources[settings_of[param.name]] = env_source(str(param.envvar))
            else:
                sources[settings_of[param.name]] = DEFAULT_SOURCE
    return sources


# The commands, in the order --help lists them.
for command in (
    processes.init,
    processes.work,
    jobs.enqueue,
    queues.status,
    jobs.show,
    jobs.logs,
    queues.stats,
    processes.metrics,
    processes.web,
    queues.requeue_dead,
    processes.scheduler,
    config.jobs,
    jobs.emit,
    jobs.search,
    processes.demo,
    queues.health,
    config.config,
    queues.pause,
    queues.resume,
    jobs.cancel,
    queues.purge,
):
    app.command()(command)
app.add_typer(batches.app, name="batch")


def global_options_first(argv: list[str], takes_value: dict[str, bool]) -> list[str]:
    """`jobctl status --quiet` read as `jobctl --quiet status`: the global options (--quiet,
    --verbose, --redis-url, --config, ...; `takes_value`: whether each one is followed by a
    value) may also follow the command, as in git or kubectl."""
    first = None
    index = 0
    while index < len(argv) and first is None:
        token = argv[index]
        if token == "--" or not token.startswith("-"):
            first = index if token != "--" else None
            break
        index += 2 if takes_value.get(token) else 1
    if first is None:
        return argv
    hoisted: list[str] = []
    rest: list[str] = []
    index = first + 1
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
    return argv[:first] + hoisted + [argv[first]] + rest


def main() -> None:
    command = typer.main.get_command(app)  # built once: it reads every command's signature
    takes_value = {option: not getattr(param, "is_flag", False) for param in command.params for option in param.opts}
    try:
        command.main(args=global_options_first(sys.argv[1:], takes_value), prog_name="jobctl")
    except JobctlError as exc:
        fail(f"error: {exc}")
        sys.exit(exc.exit_code)
    except Exception as exc:
        redis = sys.modules.get("redis")  # only a command that imported Redis can lose its connection
        if redis is None or not isinstance(exc, redis.ConnectionError):
            raise
        # imported here, not at start-up: only this command needs it
        from ..store.connection import unavailable_reason

        errors().print(f"jobctl: error: lost the connection to Redis: {unavailable_reason(exc)}", highlight=False)
        sys.exit(2)
