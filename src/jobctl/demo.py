"""`jobctl demo`: the whole system in one command, on the embedded Redis unless REDIS_URL is set.

It enqueues a realistic batch of every built-in job on the shipped examples (some failing on
purpose), runs the configured workers in burst mode until the queues drain, and prints what
happened. Retry delays are shortened to a quarter second so the failures play out in seconds.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import api, logs, views
from .config import with_overrides
from .connection import mask_url
from .producer import enqueue
from .settings import Settings
from .supervisor import Supervisor

DEMO_RETRY_DELAY = 0.25


def run_demo(settings: Settings, console: Console) -> int:
    logs.setup(settings.verbose)
    settings.load_jobs()
    config = with_overrides(settings.queues, retry_delay=DEMO_RETRY_DELAY)
    connection = settings.connection
    console.print(Text.assemble(("jobctl demo", "bold"), f" on Redis {mask_url(settings.url)}"), highlight=False)

    from .builtin.demo import demo_batch, demo_summary

    batch = demo_batch()
    enqueued = [enqueue(connection, config, name, args, kwargs) for name, args, kwargs in batch]
    console.print(f"enqueued {len(enqueued)} jobs; running the workers until the queues drain...\n")

    Supervisor(settings.url, list(config.queues.values()), burst=True).run()

    console.print()
    console.print(outcome_table(api.jobs(connection, [job.id for job in enqueued]), console.width))
    console.print(views.status_tables(api.overview(connection, config), width=console.width))
    for line in demo_summary():
        console.print(line, highlight=False)
    return 0


def outcome_table(jobs: list, width: int) -> Table:
    grid = views.table("Demo jobs", "job", "id", "state", "attempts")
    # the other columns take about 50 characters; the outcome gets what is left, on one line
    grid.add_column("result or error", no_wrap=True, overflow="ellipsis", max_width=max(20, min(64, width - 52)))
    for job in jobs:
        grid.add_row(job.job, job.id[:8], views.state_text(job.state), str(job.attempts), views.outcome_text(job))
    return grid
