"""sync_channels: channel_sync of many channels as one batch (api/batches.py), whose on_success,
analytics_synced, enqueues analytics for each channel once every sync finished: the fan-out
the analytics backend does, with the report of a channel run only on a complete sync.

Reads and writes what channel_sync and analytics do; nothing of its own.
"""

from __future__ import annotations

from ..api import records
from ..api.batches import batch
from ..api.client import current_client
from ..api.decorators import job
from .analytics import analytics
from .channels import channel_sync


@job("sync_channels", queue="default")
def sync_channels(channel_ids: list[str]) -> dict:
    """channel_sync for each channel, one batch; analytics for each once all of them finished."""
    with batch(on_success="analytics_synced", description=f"channel_sync of {len(channel_ids)} channel(s)") as synced:
        channel_sync.enqueue_many([(channel_id,) for channel_id in channel_ids])
    return {"batch_id": synced.id, "channels": len(channel_ids)}


@job("analytics_synced", queue="analytics")
def analytics_synced(batch_id: str, total: int, succeeded: int, failed: int) -> dict:
    """on_success of sync_channels' batch: analytics for each channel it synced."""
    syncs = records.jobs(current_client().connection, batch(batch_id).job_ids())
    channels = sorted({str(sync.args[0]) for sync in syncs if sync.job == "channel_sync" and sync.args})
    analytics.enqueue_many([(channel_id,) for channel_id in channels])
    return {"batch_id": batch_id, "analytics": channels}
