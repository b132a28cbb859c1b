"""`jobctl demo`: the whole system in one command, on the embedded Redis unless REDIS_URL is set.

It enqueues a realistic batch of every built-in job on the shipped examples (some failing on
purpose), runs the configured workers in burst mode until the queues drain, and prints what
happened. Retry delays are shortened to a quarter second so the failures play out in seconds.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text
from sqlalchemy import func, select

from .. import logs
from ..api import reads, records
from ..api.producer import enqueue
from ..builtin import store
from ..config.queues import with_overrides
from ..config.settings import Settings
from ..runtime.supervisor import Supervisor
from ..store.connection import mask_url
from . import jobviews, views

DEMO_RETRY_DELAY = 0.25

# The channels shipped in example_data/channels/ (one JSON export each).
EXAMPLE_CHANNELS = (
    "UC5g8GxrZysRS2dAb4yieC9o",  # Kitchen Physics: crosses 100,000 subscribers on the last day
    "UCcUglfvhG7ti3kTv39TMW1u",  # Trailside Bikes: a view spike on the last day
    "UCaPoGLaoINjgRUTd8bwYUYf",  # Pixel Garden Devlog: a video published on the last day
    "UCoCKNZmvRLiQXuZ7SidU6RJ",  # Slow Money
)
UNKNOWN_CHANNEL = "UCnoSuchChannelInExports0"
EXAMPLE_DOCUMENTS = (
    "example:docs/retry-policy.md",
    "example:docs/queue-operations.html",
    "example:docs/incident-2025-03-upload-backlog.txt",
    "example:docs/youtube-quota-guide.pdf",
)


def demo_batch() -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(job name, args, kwargs) for every job the demo enqueues, in enqueue order.

    Syncs come first; the jobs that read synced data raise a retryable "no snapshots yet"
    error if they still run before the sync, and succeed on retry. Two entries fail on
    purpose and end up dead: an unknown channel and a missing import file (PermanentErrors).
    """
    batch: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("channel_sync", [channel], {}) for channel in EXAMPLE_CHANNELS
    ]
    batch += [
        ("import", ["example:imports/channels.csv", "channels"], {}),
        ("import", ["example:imports/videos.csv", "videos"], {}),
    ]
    batch += [("upload", [path], {"collection": "demo"}) for path in EXAMPLE_DOCUMENTS]
    batch.append(
        (
            "upload",
            ["example:docs/retry-policy.md"],
            {"collection": "demo-paragraphs", "strategy": "paragraph", "chunk_size": 600},
        )
    )
    for channel in EXAMPLE_CHANNELS:
        batch += [
            ("analytics", [channel], {}),
            ("recommendations", [channel], {"top_n": 3}),
            ("notifications", [channel], {}),
            ("visualize", [channel], {}),
        ]
    batch += [
        ("channel_sync", [UNKNOWN_CHANNEL], {}),
        ("import", ["example:imports/missing.csv", "channels"], {}),
    ]
    return batch


def demo_summary() -> list[str]:
    """Where the demo's results went: the store, row counts, rejected rows and the charts."""
    counted = (
        ("channels", store.channels),
        ("daily snapshots", store.channel_snapshots),
        ("videos", store.videos),
        ("analytics reports", store.analytics_reports),
        ("recommendations", store.recommendations),
        ("alerts", store.alerts),
        ("documents", store.documents),
        ("chunks", store.chunks),
    )
    with store.engine().connect() as conn:
        counts = {label: conn.execute(select(func.count()).select_from(table)).scalar() for label, table in counted}
        imports = conn.execute(select(store.imports).order_by(store.imports.c.source_path)).all()
        charts = conn.execute(select(store.charts.c.path).order_by(store.charts.c.path)).scalars().all()
    lines = [
        f"data: {store.masked_database_url()}",
        "rows: " + ", ".join(f"{count} {label}" for label, count in counts.items()),
    ]
    for row in imports:
        detail = (
            f"{row.imported_rows} imported, {row.rejected_rows} rejected (see import_rejections)"
            if row.status != "failed"
            else row.error
        )
        lines.append(f"import {row.kind} {row.source_path}: {row.status}, {detail}")
    lines += [f"chart: {path}" for path in charts]
    lines.append('search the uploaded documents: jobctl search "retry backoff" --collection demo')
    return lines


def run_demo(settings: Settings, console: Console) -> int:
    """Enqueue demo_batch(), run the workers until the queues drain, print what happened."""
    logs.setup(settings.verbose)
    settings.load_jobs()
    config = with_overrides(settings.queues, retry_delay=DEMO_RETRY_DELAY)
    connection = settings.connection
    console.print(Text.assemble(("jobctl demo", "bold"), f" on Redis {mask_url(settings.url)}"), highlight=False)

    enqueued = [enqueue(connection, config, name, args, kwargs) for name, args, kwargs in demo_batch()]
    console.print(f"enqueued {len(enqueued)} jobs; running the workers until the queues drain...\n")

    Supervisor(settings.url, list(config.queues.values()), burst=True, lease_ttl=settings.lease_ttl).run()

    console.print()
    console.print(jobviews.outcome_table(records.jobs(connection, [job.id for job in enqueued]), console.width))
    console.print(views.status_tables(reads.overview(connection, config), width=console.width))
    for line in demo_summary():
        console.print(line, highlight=False)
    return 0
