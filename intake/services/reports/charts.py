"""Inline SVG bar charts for the auditor's report: no script, no external asset.

Rules:
- Input is numbers and labels; every label is escaped here (``html.escape``), numbers are
  formatted by us. The SVG is sized by its ``viewBox`` and scales to the page width.
- Each bar carries a ``<title>`` (a tooltip on screen) and the legend names every series,
  so the chart reads without colour too (series are also told apart by their order).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH = 720
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 30, 36


@dataclass(frozen=True)
class Series:
    label: str
    color: str  # a CSS colour we chose, never from data
    values: list[int]


def _ticks(top: int) -> list[int]:
    """0 up to at least ``top`` in at most 5 steps of 1, 2 or 5 times a power of ten."""
    power = 1
    while True:
        for n in (1, 2, 5):
            step = n * power
            if top <= 5 * step:
                return list(range(0, -(-top // step) * step + 1, step))
        power *= 10


def bar_chart(title: str, months: list[str], series: list[Series], stacked: bool) -> str:
    """Bars per month: side by side (``stacked=False``) or stacked."""
    count = max(len(months), 1)
    totals = [
        (
            sum(s.values[i] for s in series)
            if stacked
            else max((s.values[i] for s in series), default=0)
        )
        for i in range(len(months))
    ]
    ticks = _ticks(max([*totals, 1]))
    top = ticks[-1] or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{tick}</text>'
        )
    label_every = max(1, -(-count // 8))  # at most 8 month labels, so they never overlap
    for i, month in enumerate(months):
        x0 = LEFT + i * slot
        base: float = TOP + plot_h
        inner = slot * 0.76
        width = inner if stacked else inner / max(len(series), 1)
        for k, s in enumerate(series):
            value = s.values[i]
            h = plot_h * value / top
            x = x0 + slot * 0.12 + (0 if stacked else k * width)
            y = base - h
            if value:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}"'
                    f' fill="{s.color}"><title>{escape(month)} · {escape(s.label)}: {value}'
                    "</title></rect>"
                )
            if stacked:
                base = y
        if i % label_every == 0:
            parts.append(
                f'<text x="{x0 + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick"'
                f' text-anchor="middle">{escape(month)}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"'
        ' class="axis"/>'
    )
    x = LEFT
    for s in series:
        parts.append(
            f'<rect x="{x}" y="5" width="14" height="14" fill="{s.color}"/>'
            f'<text x="{x + 19}" y="17" class="legend">{escape(s.label)}</text>'
        )
        x += 36 + 9 * len(s.label)
    parts.append("</svg>")
    return "".join(parts)
