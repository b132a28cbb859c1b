"""The built-in jobs: channel_sync, analytics, sync_channels (a batch of channel_syncs, then
analytics for each), recommendations, notifications, visualize, import and upload. Real work
on real data, stored through `jobctl.builtin.store` (SQLite under .jobctl/ by default); each
module's docstring says what its job reads, writes and which environment variables it takes.
`jobctl search` (search.py) and `jobctl demo` (demo.py) go with them.

A job package like the user's: it depends on the core and the core never imports it (catalogue.load
imports it first among the job modules). Its jobs are declared here (catalogue.declare) and each
module is imported, and its @job registers the function, the first time the job is needed, so
that importing this package costs no SQLAlchemy, psycopg or pypdf.
"""

from __future__ import annotations

from ..config.settings import config_row
from ..jobs.catalogue import declare

declare("channel_sync", "jobctl.builtin.channels", queue="default", timeout="5m")
declare("analytics", "jobctl.builtin.analytics", queue="analytics")
declare("sync_channels", "jobctl.builtin.channel_batch", queue="default")
declare("analytics_synced", "jobctl.builtin.channel_batch", queue="analytics")
declare("recommendations", "jobctl.builtin.recommendations", queue="recommendations")
declare("notifications", "jobctl.builtin.notifications", queue="notifications")
declare("visualize", "jobctl.builtin.visualize", queue="default")
declare("import", "jobctl.builtin.csv_import", queue="default", timeout="30m")
declare("upload", "jobctl.builtin.upload", queue="default", timeout="10m")


def _database_url() -> dict[str, str]:
    from .store import database_url_row

    return database_url_row()


config_row("database_url", _database_url)
