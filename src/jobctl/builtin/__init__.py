"""The built-in jobs. Importing this package registers all seven of them.

channel_sync, analytics, recommendations, notifications, visualize, import and upload: real
work on real data, stored through `jobctl.store` (SQLite under .jobctl/ by default). Each
module's docstring says what its job reads, writes and which environment variables it takes.
"""

from . import analytics, channels, csv_import, notifications, recommendations, upload, visualize
from .demo import demo_batch, demo_summary

__all__ = [
    "analytics",
    "channels",
    "csv_import",
    "notifications",
    "recommendations",
    "upload",
    "visualize",
    "demo_batch",
    "demo_summary",
]

