"""analytics: growth, engagement, top videos and upload cadence from a channel's stored data.

Reads what channel_sync stored and writes one `analytics_reports` row per channel (replaced
on every run, so a re-run leaves the same row). Definitions, all as of the latest snapshot:

- growth per day: the change between consecutive snapshots divided by the days between them;
- growth over 7 / 28 days: the latest value minus the value of the latest snapshot taken on or
  before that many days earlier (None while the history is shorter than the window);
- engagement rate: (likes + comments) / views, per video and over all the channel's videos;
- upload cadence: uploads in the 28 days up to the latest snapshot, per week, and the mean
  number of days between consecutive uploads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from itertools import pairwise

from .. import job, progress
from . import store
from .channels import load_snapshots, load_videos

WINDOWS = (7, 28)
TOP_VIDEOS = 5


@job("analytics", queue="analytics")
def analytics(channel_id: str) -> dict:
    """Compute and store the channel's growth, engagement and cadence; return the headline."""
    progress(10, "loading snapshots and videos")
    with store.engine().connect() as conn:
        snapshots = load_snapshots(conn, channel_id)
        videos = load_videos(conn, channel_id)
    progress(40, f"analysing {len(snapshots)} snapshots and {len(videos)} videos")
    report = build_report(snapshots, videos)
    progress(80, "storing the report")
    with store.engine().begin() as conn:
        store.upsert(
            conn,
            store.analytics_reports,
            [
                {
                    "channel_id": channel_id,
                    "as_of": date.fromisoformat(report["as_of"]),
                    "subscribers": report["subscribers"],
                    "views": report["views"],
                    "subscriber_growth_7d": report["subscriber_growth"]["7d"],
                    "subscriber_growth_28d": report["subscriber_growth"]["28d"],
                    "view_growth_7d": report["view_growth"]["7d"],
                    "view_growth_28d": report["view_growth"]["28d"],
                    "engagement_rate": report["engagement_rate"],
                    "uploads_per_week": report["cadence"]["uploads_per_week"],
                    "report": report,
                    "computed_at": store.utcnow(),
                }
            ],
        )
    progress(100, "analysed")
    summary = {key: value for key, value in report.items() if key not in ("daily_growth", "videos")}
    return {"channel_id": channel_id, **summary}


def build_report(snapshots: Sequence, videos: Sequence) -> dict:
    """The full report from snapshot rows (oldest first) and video rows; plain JSON values."""
    latest = snapshots[-1]
    as_of = latest.snapshot_date
    daily = daily_growth(snapshots)
    per_video = [
        {
            "video_id": video.video_id,
            "title": video.title,
            "views": video.views,
            "engagement_rate": engagement_rate(video.likes + video.comments, video.views),
        }
        for video in videos
    ]
    return {
        "as_of": as_of.isoformat(),
        "subscribers": latest.subscribers,
        "views": latest.views,
        "subscribers_per_day": daily[-1]["subscribers"] if daily else None,
        "views_per_day": daily[-1]["views"] if daily else None,
        "subscriber_growth": {f"{days}d": window_growth(snapshots, "subscribers", days) for days in WINDOWS},
        "view_growth": {f"{days}d": window_growth(snapshots, "views", days) for days in WINDOWS},
        "engagement_rate": engagement_rate(
            sum(video.likes + video.comments for video in videos), sum(video.views for video in videos)
        ),
        "top_videos": sorted(per_video, key=lambda video: video["views"], reverse=True)[:TOP_VIDEOS],
        "cadence": upload_cadence([store.as_utc(video.published_at).date() for video in videos], as_of),
        "daily_growth": daily,
        "videos": per_video,
    }


def daily_growth(snapshots: Sequence) -> list[dict]:
    growth = []
    for before, after in pairwise(snapshots):
        days = (after.snapshot_date - before.snapshot_date).days
        growth.append(
            {
                "date": after.snapshot_date.isoformat(),
                "subscribers": round((after.subscribers - before.subscribers) / days, 1),
                "views": round((after.views - before.views) / days, 1),
            }
        )
    return growth


def window_growth(snapshots: Sequence, field: str, days: int) -> int | None:
    latest = snapshots[-1]
    start = latest.snapshot_date - timedelta(days=days)
    baseline = [snapshot for snapshot in snapshots if snapshot.snapshot_date <= start]
    if not baseline:
        return None
    growth: int = getattr(latest, field) - getattr(baseline[-1], field)
    return growth


def engagement_rate(interactions: int, views: int) -> float | None:
    return round(interactions / views, 4) if views else None


def upload_cadence(published: list[date], as_of: date) -> dict:
    published = sorted(published)
    recent = [day for day in published if as_of - timedelta(days=28) < day <= as_of]
    gaps = [(later - earlier).days for earlier, later in pairwise(published)]
    return {
        "uploads_28d": len(recent),
        "uploads_per_week": round(len(recent) / 4, 2),
        "mean_days_between_uploads": round(sum(gaps) / len(gaps), 1) if gaps else None,
        "days_since_last_upload": (as_of - published[-1]).days if published else None,
    }
