"""visualize: an SVG chart of a channel's subscriber and view history and its top videos.

The chart is written to `.jobctl/charts/<channel id>-<hash>.svg` under the current directory,
where the hash is of the data drawn: a re-run on unchanged data finds the file and returns it
(`cached: true`) without drawing again; new data gives a new file and the channel's older
charts are removed. The path is also recorded in the `charts` table. The SVG is drawn by hand
(three panels of lines and bars), so no plotting library is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
from html import escape
from pathlib import Path

from .. import job, progress
from . import store
from .channels import channel_title, load_snapshots, load_videos

CHARTS_DIR = Path(".jobctl") / "charts"
TOP_VIDEOS = 8
WIDTH, PANEL_HEIGHT, MARGIN = 900, 200, 60
COLORS = {"subscribers": "#d93025", "views": "#1a73e8", "bars": "#188038"}


@job("visualize", queue="default")
def visualize(channel_id: str) -> dict:
    """Render the channel's history and top videos as an SVG; return the file's path."""
    progress(10, "loading snapshots and videos")
    with store.engine().connect() as conn:
        snapshots = load_snapshots(conn, channel_id)
        videos = load_videos(conn, channel_id)
        title = channel_title(conn, channel_id)
    top = sorted(videos, key=lambda video: video.views, reverse=True)[:TOP_VIDEOS]
    data = {
        "title": title,
        "days": [snapshot.snapshot_date.isoformat() for snapshot in snapshots],
        "subscribers": [snapshot.subscribers for snapshot in snapshots],
        "views": [snapshot.views for snapshot in snapshots],
        "top_videos": [[video.title, video.views] for video in top],
    }
    content_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    charts_dir = Path.cwd() / CHARTS_DIR
    path = charts_dir / f"{channel_id}-{content_hash}.svg"
    cached = path.is_file()
    if not cached:
        progress(40, "drawing")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(render_svg(data), encoding="utf-8")
        os.replace(partial, path)  # readers never see half a file
        for stale in charts_dir.glob(f"{channel_id}-*.svg"):
            if stale != path:
                stale.unlink(missing_ok=True)
    progress(80, "recording the chart")
    with store.engine().begin() as conn:
        store.upsert(
            conn,
            store.charts,
            [
                {
                    "channel_id": channel_id,
                    "path": str(path),
                    "content_hash": content_hash,
                    "rendered_at": store.utcnow(),
                }
            ],
        )
    progress(100, "rendered" if not cached else "unchanged: cached chart")
    return {
        "channel_id": channel_id,
        "path": str(path),
        "cached": cached,
        "days": len(snapshots),
        "top_videos": len(top),
    }


def render_svg(data: dict) -> str:
    height = 3 * PANEL_HEIGHT + 2 * MARGIN
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">'
        ),
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN}" y="32" font-size="18" font-weight="bold">{escape(data["title"])}</text>',
    ]
    top = MARGIN
    for field in ("subscribers", "views"):
        parts += _line_panel(field.capitalize(), data["days"], data[field], COLORS[field], top)
        top += PANEL_HEIGHT
    parts += _bar_panel("Top videos by views", data["top_videos"], top)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _line_panel(label: str, days: list[str], values: list[int], color: str, top: int) -> list[str]:
    left, width, height = MARGIN + 20, WIDTH - 2 * MARGIN - 20, PANEL_HEIGHT - 60
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{left + i * step:.1f},{top + 30 + height - (value - low) / span * height:.1f}"
        for i, value in enumerate(values)
    )
    return [
        f'<text x="{MARGIN}" y="{top + 18}" font-weight="bold">{label}</text>',
        f'<rect x="{left}" y="{top + 30}" width="{width}" height="{height}" fill="none" stroke="#ddd"/>',
        f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>',
        f'<text x="{left - 4}" y="{top + 34}" text-anchor="end">{compact(high)}</text>',
        f'<text x="{left - 4}" y="{top + 30 + height}" text-anchor="end">{compact(low)}</text>',
        f'<text x="{left}" y="{top + 46 + height}">{days[0]}</text>',
        f'<text x="{left + width}" y="{top + 46 + height}" text-anchor="end">{days[-1]}</text>',
    ]


def _bar_panel(label: str, bars: list[list], top: int) -> list[str]:
    parts = [f'<text x="{MARGIN}" y="{top + 18}" font-weight="bold">{label}</text>']
    if not bars:
        return [*parts, f'<text x="{MARGIN}" y="{top + 46}">no videos synced</text>']
    label_width, bar_left = 330, MARGIN + 340
    bar_space = WIDTH - bar_left - MARGIN - 50
    row_height = (PANEL_HEIGHT + MARGIN - 40) / len(bars)
    most = max(views for _, views in bars) or 1
    for i, (title, views) in enumerate(bars):
        y = top + 30 + i * row_height
        shown = title if len(title) <= 48 else title[:47] + "…"
        bar = max(views / most * bar_space, 1)
        parts += [
            (
                f'<text x="{MARGIN + label_width}" y="{y + row_height * 0.65:.1f}" text-anchor="end">'
                f"{escape(shown)}</text>"
            ),
            (
                f'<rect x="{bar_left}" y="{y + 2:.1f}" width="{bar:.1f}" height="{row_height - 4:.1f}" '
                f'fill="{COLORS["bars"]}"/>'
            ),
            f'<text x="{bar_left + bar + 4:.1f}" y="{y + row_height * 0.65:.1f}">{compact(views)}</text>',
        ]
    return parts


def compact(number: int) -> str:
    """1234 -> 1.2K, 3400000 -> 3.4M."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(number) >= size:
            return f"{number / size:.1f}{suffix}"
    return str(number)
