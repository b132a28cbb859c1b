"""The built-in jobs: channel_sync, analytics, recommendations, notifications, visualize, import
and upload. Real work on real data, stored through `jobctl.store` (SQLite under .jobctl/ by
default); each module's docstring says what its job reads, writes and which environment
variables it takes.

Importing this package declares them (registry.declare); each module is imported, and its
@job registers the function, the first time the job is needed.
"""

from ..registry import declare

declare("channel_sync", "jobctl.builtin.channels", queue="default", timeout="5m")
declare("analytics", "jobctl.builtin.analytics", queue="analytics")
declare("recommendations", "jobctl.builtin.recommendations", queue="recommendations")
declare("notifications", "jobctl.builtin.notifications", queue="notifications")
declare("visualize", "jobctl.builtin.visualize", queue="default")
declare("import", "jobctl.builtin.csv_import", queue="default", timeout="30m")
declare("upload", "jobctl.builtin.upload", queue="default", timeout="10m")
