"""Throughput and failure charts as inline SVG, drawn on the server: no JavaScript library, no CDN."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from ..api.jobstats import MinuteHistory

WIDTH, HEIGHT, AXIS = 600, 140, 18  # viewBox units; the SVG scales to its container


@dataclass
class Series:
    title: str
    minutes_per_bar: int
    finished: list[int]
    failed: list[int]

    @property
    def total(self) -> int:
        return sum(self.finished) + sum(self.failed)

    @property
    def failures(self) -> int:
        return sum(self.failed)


def series(history: MinuteHistory, title: str, minutes_per_bar: int) -> Series:
    """Minutes summed into bars of `minutes_per_bar` minutes, oldest first."""

    def bars(counts: list[int]) -> list[int]:
        return [sum(counts[i : i + minutes_per_bar]) for i in range(0, len(counts), minutes_per_bar)]

    return Series(title, minutes_per_bar, bars(history.finished), bars(history.failed))


def _span(minutes: int) -> str:
    return f"{minutes // 60}h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes}m"


def bar_chart(data: Series) -> Markup:
    """Stacked bars: finished (green) under failed (red), with the peak and the time span labelled."""
    count = len(data.finished)
    peak = max((f + x for f, x in zip(data.finished, data.failed)), default=0) or 1
    slot = WIDTH / max(count, 1)
    plot = HEIGHT - AXIS
    parts = []
    for index, (finished, failed) in enumerate(zip(data.finished, data.failed)):
        x = index * slot
        base: float = plot
        ago = (count - index) * data.minutes_per_bar
        for value, kind in ((finished, "finished"), (failed, "failed")):
            if value:
                height = plot * value / peak
                base -= height
                parts.append(
                    f'<rect class="{kind}" x="{x:.1f}" y="{base:.1f}" width="{max(slot - 1, 0.5):.1f}" '
                    f'height="{height:.1f}"><title>{value} {kind}, {_span(ago)} ago</title></rect>'
                )
    span = _span(count * data.minutes_per_bar)
    label = f"{data.title}: {data.total} executions, {data.failures} failed, in the last {span}"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<line class="axis" x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}"/>'
        f"{''.join(parts)}"
        f'<text x="2" y="12">peak {peak if any(data.finished) or any(data.failed) else 0} / {_span(data.minutes_per_bar)}</text>'
        f'<text x="2" y="{HEIGHT - 4}">-{span}</text>'
        f'<text x="{WIDTH - 2}" y="{HEIGHT - 4}" text-anchor="end">now</text>'
        f"</svg>"
    )
