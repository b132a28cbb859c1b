"""channel_sync: fetch a channel's statistics and recent videos, store a snapshot and the videos.

Where channels come from (`JOBCTL_CHANNEL_SOURCE`):

- `youtube`, the default when `YOUTUBE_API_KEY` is set: the YouTube Data API v3 (`channels`,
  `playlistItems` and `videos` endpoints; base URL `JOBCTL_YOUTUBE_API_URL`, default
  https://www.googleapis.com/youtube/v3). Each sync stores today's snapshot (UTC) and the
  channel's 50 most recent uploads. 429, 5xx and timeouts are retried; an unknown channel,
  a 404 and a 403 (bad key, quota) are permanent.
- `exports`, the default otherwise: a directory of JSON exports, `JOBCTL_CHANNELS_DIR`
  (default: the four example channels shipped with jobctl, `builtin/example_data/channels`), one
  `<channel id>.json` each:
  `{"channel": <youtube#channel>, "videos": [<youtube#video>...],
  "history": [{"capturedAt": ISO time, "statistics": <channel statistics>}...]}`.
  The resources have the API's shapes (counts are strings, durations ISO 8601), so both
  sources go through the same parsing. Every history entry becomes a snapshot.

A sync upserts on natural keys (channel id; channel id and day; video id), so a re-run leaves
the same rows. Each attempt's outcome goes to `sync_status` for the "sync keeps failing" alert.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from .. import PermanentError, job, progress
from . import example_data, store
from .http import request_json

DEFAULT_YOUTUBE_API_URL = "https://www.googleapis.com/youtube/v3"
DEFAULT_CHANNELS_DIR = example_data.ROOT / "channels"
RECENT_VIDEOS = 50  # the most one playlistItems page returns
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


@dataclass(frozen=True)
class ChannelData:
    """One fetch of a channel, as rows for the channels, channel_snapshots and videos tables."""

    channel: dict
    snapshots: list[dict]
    videos: list[dict]


class NoSnapshotsYet(Exception):
    """A job needs synced data that is not there yet. Not permanent: a sync may be running."""

    def __init__(self, channel_id: str):
        super().__init__(f"no snapshots yet for channel {channel_id}: channel_sync has not stored any")


class YouTubeSource:
    name = "youtube"

    def __init__(self, api_key: str, base_url: str = DEFAULT_YOUTUBE_API_URL):
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")

    def fetch(self, channel_id: str) -> ChannelData:
        found = self._get("channels", part="snippet,statistics,contentDetails", id=channel_id)
        if not found.get("items"):
            raise PermanentError(f"YouTube has no channel {channel_id!r}")
        resource = found["items"][0]
        uploads = resource["contentDetails"]["relatedPlaylists"]["uploads"]
        playlist = self._get("playlistItems", part="contentDetails", playlistId=uploads, maxResults=RECENT_VIDEOS)
        video_ids = [item["contentDetails"]["videoId"] for item in playlist.get("items", [])]
        video_resources = []
        if video_ids:
            answer = self._get("videos", part="snippet,statistics,contentDetails", id=",".join(video_ids))
            video_resources = answer.get("items", [])
        now = store.utcnow()
        return ChannelData(
            channel=channel_row(resource, self.name),
            snapshots=[snapshot_row(channel_id, now, resource["statistics"])],
            videos=[video_row(channel_id, video) for video in video_resources],
        )

    def _get(self, endpoint: str, **params: object) -> dict:
        answer = request_json("GET", f"{self.base_url}/{endpoint}", params={**params, "key": self.api_key})
        if not isinstance(answer, dict):
            # the API always answers an object: anything else is a glitch, so an ordinary (retried) error
            raise ValueError(f"YouTube's {endpoint} answer is not a JSON object")
        return answer


class ExportDirectorySource:
    name = "exports"

    def __init__(self, directory: Path):
        self.directory = directory

    def fetch(self, channel_id: str) -> ChannelData:
        path = self.directory / f"{channel_id}.json"
        if not path.is_file():
            if not self.directory.is_dir():
                raise PermanentError(f"channel exports directory {self.directory} does not exist")
            raise PermanentError(f"unknown channel {channel_id!r}: there is no {path}")
        try:
            export = json.loads(path.read_text(encoding="utf-8"))
            return ChannelData(
                channel=channel_row(export["channel"], self.name),
                snapshots=[
                    snapshot_row(channel_id, _parse_time(entry["capturedAt"]), entry["statistics"])
                    for entry in export["history"]
                ],
                videos=[video_row(channel_id, video) for video in export["videos"]],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{path} is not a channel export: {type(exc).__name__}: {exc}") from None


def configured_source() -> YouTubeSource | ExportDirectorySource:
    api_key = os.environ.get("YOUTUBE_API_KEY", "").strip()
    kind = os.environ.get("JOBCTL_CHANNEL_SOURCE", "").strip() or ("youtube" if api_key else "exports")
    if kind == "youtube":
        if not api_key:
            raise PermanentError("JOBCTL_CHANNEL_SOURCE=youtube needs YOUTUBE_API_KEY")
        base_url = os.environ.get("JOBCTL_YOUTUBE_API_URL", "").strip() or DEFAULT_YOUTUBE_API_URL
        return YouTubeSource(api_key, base_url)
    if kind == "exports":
        return ExportDirectorySource(Path(os.environ.get("JOBCTL_CHANNELS_DIR") or DEFAULT_CHANNELS_DIR))
    raise PermanentError(f"JOBCTL_CHANNEL_SOURCE must be 'youtube' or 'exports', not {kind!r}")


@job("channel_sync", queue="default", timeout="5m")
def channel_sync(channel_id: str) -> dict:
    """Fetch a channel and its recent videos; store the snapshot(s) and the videos."""
    if not _CHANNEL_ID.match(channel_id):
        raise PermanentError(f"{channel_id!r} is not a channel id")
    source = configured_source()
    progress(10, f"fetching {channel_id} from {source.name}")
    try:
        data = source.fetch(channel_id)
    except Exception as exc:
        _record_failure(channel_id, f"{type(exc).__name__}: {exc}")
        raise
    snapshots = _one_per_day(data.snapshots)
    progress(60, f"storing {len(snapshots)} snapshot(s) and {len(data.videos)} videos")
    now = store.utcnow()
    with store.engine().begin() as conn:
        store.upsert(conn, store.channels, [{**data.channel, "updated_at": now}])
        store.upsert(conn, store.channel_snapshots, snapshots)
        store.upsert(conn, store.videos, [{**video, "updated_at": now} for video in data.videos])
        store.upsert(
            conn,
            store.sync_status,
            [
                {
                    "channel_id": channel_id,
                    "last_attempt_at": now,
                    "last_success_at": now,
                    "consecutive_failures": 0,
                    "failing_since": None,
                    "last_error": None,
                }
            ],
        )
    latest = max(snapshots, key=lambda snapshot: snapshot["snapshot_date"])
    progress(100, "synced")
    return {
        "channel_id": channel_id,
        "title": data.channel["title"],
        "source": source.name,
        "snapshots": len(snapshots),
        "videos": len(data.videos),
        "snapshot_date": latest["snapshot_date"].isoformat(),
        "subscribers": latest["subscribers"],
        "views": latest["views"],
    }


def _record_failure(channel_id: str, error: str) -> None:
    now = store.utcnow()
    with store.engine().begin() as conn:
        previous = conn.execute(select(store.sync_status).where(store.sync_status.c.channel_id == channel_id)).first()
        store.upsert(
            conn,
            store.sync_status,
            [
                {
                    "channel_id": channel_id,
                    "last_attempt_at": now,
                    "last_success_at": previous.last_success_at if previous else None,
                    "consecutive_failures": (previous.consecutive_failures if previous else 0) + 1,
                    "failing_since": (previous and previous.failing_since) or now,
                    "last_error": error,
                }
            ],
        )


def _one_per_day(snapshots: list[dict]) -> list[dict]:
    """The last snapshot of each day: one upsert statement must not touch a row twice."""
    by_day = {}
    for snapshot in sorted(snapshots, key=lambda s: s["captured_at"]):
        by_day[(snapshot["channel_id"], snapshot["snapshot_date"])] = snapshot
    return list(by_day.values())


def channel_row(resource: dict, source: str) -> dict:
    snippet = resource["snippet"]
    return {
        "channel_id": resource["id"],
        "title": snippet["title"],
        "description": snippet.get("description", ""),
        "custom_url": snippet.get("customUrl"),
        "country": snippet.get("country"),
        "published_at": _parse_time(snippet["publishedAt"]) if snippet.get("publishedAt") else None,
        "source": source,
    }


def snapshot_row(channel_id: str, captured_at: datetime, statistics: dict) -> dict:
    return {
        "channel_id": channel_id,
        "snapshot_date": captured_at.date(),
        # hiddenSubscriberCount channels omit subscriberCount
        "subscribers": int(statistics.get("subscriberCount", 0)),
        "views": int(statistics["viewCount"]),
        "video_count": int(statistics.get("videoCount", 0)),
        "captured_at": captured_at,
    }


def video_row(channel_id: str, resource: dict) -> dict:
    snippet, statistics = resource["snippet"], resource.get("statistics", {})
    duration = resource.get("contentDetails", {}).get("duration")
    return {
        "video_id": resource["id"],
        "channel_id": channel_id,
        "title": snippet["title"],
        "description": snippet.get("description", ""),
        "tags": snippet.get("tags", []),
        "published_at": _parse_time(snippet["publishedAt"]),
        "duration_seconds": parse_iso_duration(duration) if duration else None,
        # likeCount and commentCount are absent when hidden or disabled
        "views": int(statistics.get("viewCount", 0)),
        "likes": int(statistics.get("likeCount", 0)),
        "comments": int(statistics.get("commentCount", 0)),
    }


def parse_iso_duration(value: str) -> int:
    """Seconds in an ISO 8601 duration as YouTube writes them: PT1H2M3S, P1DT2H."""
    match = _ISO_DURATION.match(value)
    if not match:
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _parse_time(value: str) -> datetime:
    return store.as_utc(datetime.fromisoformat(value))


def load_snapshots(conn: Connection, channel_id: str) -> Sequence[Row]:
    """The channel's snapshots, oldest first; NoSnapshotsYet (retryable) when there are none."""
    rows = conn.execute(
        select(store.channel_snapshots)
        .where(store.channel_snapshots.c.channel_id == channel_id)
        .order_by(store.channel_snapshots.c.snapshot_date)
    ).all()
    if not rows:
        raise NoSnapshotsYet(channel_id)
    return rows


def load_videos(conn: Connection, channel_id: str) -> Sequence[Row]:
    """The channel's stored videos, oldest first."""
    return conn.execute(
        select(store.videos)
        .where(store.videos.c.channel_id == channel_id)
        .order_by(store.videos.c.published_at, store.videos.c.video_id)
    ).all()


def channel_title(conn: Connection, channel_id: str) -> str:
    title = conn.execute(select(store.channels.c.title).where(store.channels.c.channel_id == channel_id)).scalar()
    return title or channel_id
