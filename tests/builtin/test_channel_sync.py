from datetime import date

import pytest
from sqlalchemy import func, select

from jobctl import PermanentError
from jobctl.builtin import store
from jobctl.builtin.channels import channel_sync, parse_iso_duration
from jobctl.builtin.http import TransientHTTPError

from .conftest import CHANNEL_ID


def count(table) -> int:
    with store.engine().connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_export_sync_stores_every_day_and_every_video(small_channel, store_backend, run_job):
    result = run_job(channel_sync, small_channel)

    assert result == {
        "channel_id": CHANNEL_ID,
        "title": "Small Test Kitchen",
        "source": "exports",
        "snapshots": 29,
        "videos": 6,
        "snapshot_date": "2025-05-29",
        "subscribers": 1010,
        "views": 82000,
    }
    assert (count(store.channels), count(store.channel_snapshots), count(store.videos)) == (1, 29, 6)
    assert run_job.progress.percents == [10, 60, 100]
    with store.engine().connect() as conn:
        video = conn.execute(select(store.videos).where(store.videos.c.title == "Sourdough basics")).one()
    assert (video.views, video.likes, video.comments, video.duration_seconds) == (12000, 500, 100, 450)


def test_a_second_sync_leaves_the_same_rows(small_channel, store_backend):
    channel_sync(small_channel)
    channel_sync(small_channel)
    assert (count(store.channels), count(store.channel_snapshots), count(store.videos)) == (1, 29, 6)


def test_unknown_channel_is_permanent_and_counts_as_a_failed_sync(small_channel, store_backend):
    for _ in range(2):
        with pytest.raises(PermanentError, match="unknown channel 'UCnobody'"):
            channel_sync("UCnobody")
    with store.engine().connect() as conn:
        status = conn.execute(select(store.sync_status)).one()
    assert (status.channel_id, status.consecutive_failures, status.last_success_at) == ("UCnobody", 2, None)


def test_a_channel_id_cannot_reach_outside_the_exports_directory(small_channel, store_backend):
    with pytest.raises(PermanentError, match="not a channel id"):
        channel_sync("../../etc/passwd")


def test_youtube_sync_stores_todays_snapshot_and_the_uploads(youtube, store_backend):
    result = channel_sync(CHANNEL_ID)

    assert (result["source"], result["snapshots"], result["videos"]) == ("youtube", 1, 6)
    assert result["snapshot_date"] == store.utcnow().date().isoformat()
    assert (result["subscribers"], result["views"]) == (1010, 82000)
    assert youtube.requests == [
        "GET /youtube/v3/channels",
        "GET /youtube/v3/playlistItems",
        "GET /youtube/v3/videos",
    ]
    assert count(store.videos) == 6


def test_youtube_429_is_retryable_and_the_retry_succeeds(youtube, store_backend):
    youtube.fail_next.append(("/youtube/v3/videos", 429))
    with pytest.raises(TransientHTTPError, match="HTTP 429") as failure:
        channel_sync(CHANNEL_ID)
    assert not isinstance(failure.value, PermanentError)
    assert count(store.videos) == 0

    assert channel_sync(CHANNEL_ID)["videos"] == 6
    with store.engine().connect() as conn:
        assert conn.execute(select(store.sync_status.c.consecutive_failures)).scalar() == 0


def test_youtube_5xx_is_retryable(youtube, store_backend):
    youtube.fail_next.append(("/youtube/v3/channels", 503))
    with pytest.raises(TransientHTTPError, match="HTTP 503"):
        channel_sync(CHANNEL_ID)


def test_youtube_unknown_channel_is_permanent(youtube, store_backend):
    with pytest.raises(PermanentError, match="YouTube has no channel 'UCmissing'"):
        channel_sync("UCmissing")


def test_youtube_404_is_permanent(youtube, store_backend):
    del youtube.videos[CHANNEL_ID]  # its uploads playlist is gone
    with pytest.raises(PermanentError, match="HTTP 404 The playlist identified"):
        channel_sync(CHANNEL_ID)


def test_youtube_bad_key_is_permanent_and_the_key_is_not_in_the_message(youtube, store_backend, monkeypatch):
    monkeypatch.setenv("YOUTUBE_API_KEY", "wrong-secret-key")
    with pytest.raises(PermanentError, match="HTTP 403 API key not valid") as failure:
        channel_sync(CHANNEL_ID)
    assert "wrong-secret-key" not in str(failure.value)


def test_youtube_unreachable_is_retryable(store_backend, monkeypatch):
    monkeypatch.setenv("YOUTUBE_API_KEY", "k")
    monkeypatch.setenv("JOBCTL_YOUTUBE_API_URL", "http://127.0.0.1:9/youtube/v3")  # discard port
    with pytest.raises(TransientHTTPError):
        channel_sync(CHANNEL_ID)


def test_shipped_exports_sync(store_backend, monkeypatch):
    from jobctl.cli.demo import EXAMPLE_CHANNELS

    from .conftest import EXAMPLES

    monkeypatch.setenv("JOBCTL_CHANNELS_DIR", str(EXAMPLES / "channels"))
    results = [channel_sync(channel) for channel in EXAMPLE_CHANNELS]
    assert all(result["snapshots"] == 42 and result["videos"] >= 10 for result in results)
    assert {result["snapshot_date"] for result in results} == {date(2025, 6, 1).isoformat()}


@pytest.mark.parametrize("text, seconds", [("PT7M30S", 450), ("PT1H2M3S", 3723), ("P1DT2H", 93600), ("PT45S", 45)])
def test_iso_durations(text, seconds):
    assert parse_iso_duration(text) == seconds
