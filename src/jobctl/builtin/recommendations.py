"""recommendations: when to publish, which title words work, and which videos to push next.

From the channel's stored videos (what channel_sync or import stored), ranked by *lift*: the
mean views of a group of videos divided by the mean views of all the channel's videos, so
1.5 means "50% more views than the channel's average video".

- weekday and hour: videos grouped by the UTC weekday and hour they were published;
- keyword: words of the titles (stopwords left out) used by at least two videos, lift > 1;
- similar_video: the channel's other videos most like its three most viewed ones, by TF-IDF
  cosine over title, tags and description: candidates to promote next to the hits.

The channel's rows in `recommendations` are replaced on every run (a re-run leaves the same
rows); the top `top_n` of each kind are stored and returned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from statistics import fmean

from sqlalchemy import delete

from .. import job, progress
from . import store
from .arguments import whole_number
from .channels import load_snapshots, load_videos
from .text import sparse_cosine, tfidf_vectors, tokenize

BEST_VIDEOS = 3
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@job("recommendations", queue="recommendations")
def recommendations(channel_id: str, top_n: int = 5) -> dict:
    """Rank publishing weekdays and hours, title keywords and videos like the channel's best."""
    top_n = whole_number("top_n", top_n, minimum=1)
    progress(10, "loading videos")
    with store.engine().connect() as conn:
        load_snapshots(conn, channel_id)  # raises NoSnapshotsYet until the channel is synced
        videos = load_videos(conn, channel_id)
    progress(40, f"ranking {len(videos)} videos")
    ranked = rank(videos, top_n)
    progress(80, "storing recommendations")
    now = store.utcnow()
    with store.engine().begin() as conn:
        conn.execute(delete(store.recommendations).where(store.recommendations.c.channel_id == channel_id))
        rows = [
            {
                "channel_id": channel_id,
                "kind": kind,
                "rank": position,
                "item": entry["item"],
                "score": entry["score"],
                "detail": entry["detail"],
                "computed_at": now,
            }
            for kind, entries in ranked.items()
            for position, entry in enumerate(entries, start=1)
        ]
        if rows:
            conn.execute(store.recommendations.insert(), rows)
    progress(100, "recommended")
    return {
        "channel_id": channel_id,
        "videos": len(videos),
        **{
            kind: [{"item": entry["item"], "score": entry["score"]} for entry in entries]
            for kind, entries in ranked.items()
        },
    }


def rank(videos: Sequence, top_n: int) -> dict[str, list[dict]]:
    if not videos:
        return {"weekday": [], "hour": [], "keyword": [], "similar_video": []}
    average = fmean(video.views for video in videos) or 1.0
    published = [store.as_utc(video.published_at) for video in videos]
    return {
        "weekday": _by_group(videos, published, lambda moment: WEEKDAYS[moment.weekday()], average)[:top_n],
        "hour": _by_group(videos, published, lambda moment: f"{moment.hour:02d}:00 UTC", average)[:top_n],
        "keyword": _keywords(videos, average)[:top_n],
        "similar_video": _similar_to_best(videos)[:top_n],
    }


def _by_group(videos: Sequence, published: list, group_of: Callable, average: float) -> list[dict]:
    groups = defaultdict(list)
    for video, moment in zip(videos, published):
        groups[group_of(moment)].append(video.views)
    return _ranked(groups, average)


def _keywords(videos: Sequence, average: float) -> list[dict]:
    groups = defaultdict(list)
    for video in videos:
        for word in set(tokenize(video.title)):
            groups[word].append(video.views)
    frequent = {word: views for word, views in groups.items() if len(views) >= 2}
    return [entry for entry in _ranked(frequent, average) if entry["score"] > 1]


def _ranked(groups: dict[str, list[int]], average: float) -> list[dict]:
    entries = [
        {
            "item": name,
            "score": round(fmean(views) / average, 3),
            "detail": {"videos": len(views), "mean_views": round(fmean(views))},
        }
        for name, views in groups.items()
    ]
    # Ties: the group with more videos is the better evidence, then a stable name order.
    return sorted(entries, key=lambda e: (-e["score"], -e["detail"]["videos"], e["item"]))


def _similar_to_best(videos: Sequence) -> list[dict]:
    by_views = sorted(videos, key=lambda video: video.views, reverse=True)
    best, others = by_views[:BEST_VIDEOS], by_views[BEST_VIDEOS:]
    vectors = tfidf_vectors(
        [" ".join([video.title, " ".join(video.tags or []), video.description or ""]) for video in best + others]
    )
    best_vectors, other_vectors = vectors[: len(best)], vectors[len(best) :]
    entries = []
    for video, vector in zip(others, other_vectors):
        similarity, closest = max(
            (sparse_cosine(vector, hit_vector), hit.title) for hit, hit_vector in zip(best, best_vectors)
        )
        if similarity > 0:
            entries.append(
                {
                    "item": video.title,
                    "score": round(similarity, 3),
                    "detail": {"video_id": video.video_id, "views": video.views, "similar_to": closest},
                }
            )
    return sorted(entries, key=lambda e: (-e["score"], e["item"]))
