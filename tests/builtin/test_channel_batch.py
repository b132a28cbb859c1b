"""sync_channels: channel_sync of many channels as one batch, whose on_success enqueues analytics
for each channel (builtin/channel_batch.py), on the in-process worker and the example exports."""

from __future__ import annotations

from sqlalchemy import select

from jobctl import testing
from jobctl.api.batches import read
from jobctl.api.client import Client
from jobctl.builtin import store
from jobctl.builtin.channel_batch import sync_channels

CHANNELS = ["UC5g8GxrZysRS2dAb4yieC9o", "UCaPoGLaoINjgRUTd8bwYUYf", "UCcUglfvhG7ti3kTv39TMW1u"]
QUEUES = "default: {max_retries: 0}\nanalytics: {max_retries: 0}\n"


def test_analytics_runs_for_each_channel_once_every_sync_finished(redis_url, workdir):
    (workdir / "queue.yml").write_text(QUEUES)
    client = Client(redis_url, workdir / "queue.yml")
    with testing.default_client(client):
        fan_out = sync_channels.enqueue(CHANNELS)
        worker = testing.Worker()
        worker.run_one()  # sync_channels: the batch of syncs is enqueued, analytics not yet
        batch_id = fan_out.result()["batch_id"]
        batch = read(client.connection, batch_id)
        assert (batch.total, batch.pending, batch.callback_ids) == (3, 3, {"success": []})
        worker.drain()
        batch = read(client.connection, batch_id)
        assert (batch.succeeded, batch.complete) == (3, True)
        (callback,) = batch.callback_ids["success"]
        assert client.get(callback).result() == {"batch_id": batch_id, "analytics": sorted(CHANNELS)}
    client.close()
    with store.engine().begin() as conn:
        reported = conn.execute(select(store.analytics_reports.c.channel_id)).scalars().all()
    assert sorted(reported) == sorted(CHANNELS)  # one report per channel
