"""What is configured and registered, read without Redis: config, jobs."""

import typer

from ..config.settings import Settings
from .common import console, print_json


def config(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """The effective configuration (Redis URL, files, job modules, every queue setting, recurring
    entries) and where each value came from: flag, env, file or default. Passwords are masked.

    Example: jobctl config --json | jq '.queues[] | {name, workers: .settings.worker_count.value}'
    """
    # imported here, not at start-up: only this command needs it (PyYAML, redis-py)
    from .configview import effective as effective_settings

    settings: Settings = ctx.obj
    effective = effective_settings(settings)
    if as_json:
        print_json(effective)
        return
    # imported here, not at start-up: only this command needs it
    from . import views

    for table in views.config_tables(effective):
        console().print(table)


def jobs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """The registered job names, their queues and signatures.

    Example: JOBCTL_JOBS=myapp.jobs jobctl jobs
    """
    # imported here, not at start-up: only this command needs it
    from ..api.events import subscriptions
    from ..jobs import catalogue
    from . import views

    settings: Settings = ctx.obj
    settings.load_jobs()
    specs, handlers = catalogue.all_jobs(), subscriptions()
    if as_json:
        print_json(views.registered_jobs(specs, handlers))
    else:
        for table in views.jobs_tables(specs, handlers):
            console().print(table)
