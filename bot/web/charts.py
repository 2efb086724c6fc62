"""Server-rendered SVG charts: geometry computed here, drawn by the templates."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, ROW, LABEL, GAP = 360, 26, 72, 6


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    href: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]


def bars(items: list[tuple[str, int, str]]) -> Chart:
    """Horizontal bars, one row per item, scaled to the largest value."""
    top = max((v for _, v, _ in items), default=0) or 1
    span = WIDTH - LABEL - 40
    out = [
        Bar(label, value, href, LABEL, i * ROW + GAP / 2, max(2.0, span * value / top), ROW - GAP)
        for i, (label, value, href) in enumerate(items)
    ]
    return Chart(WIDTH, max(ROW, len(items) * ROW), out)


def columns(items: list[tuple[str, int]], height: int = 140) -> Chart:
    """Vertical columns (tickets per day), labels under each."""
    top = max((v for _, v in items), default=0) or 1
    n = max(1, len(items))
    slot = WIDTH / n
    plot = height - 34
    out = [
        Bar(label, value, "", i * slot + slot * 0.15, 14 + plot - plot * value / top,
            slot * 0.7, max(1.0, plot * value / top))
        for i, (label, value) in enumerate(items)
    ]
    return Chart(WIDTH, height, out)
