"""Small charts drawn on the server as inline SVG: no chart library, no script.

Every label goes through ``html.escape``; the pages embed the result with
Jinja's ``|safe``, so nothing a node sends can become markup.
"""

from __future__ import annotations

from html import escape

import numpy as np

__all__ = ["alerts_per_hour_svg", "score_histogram_svg"]

_COLOURS = ("#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599")
_WIDTH, _HEIGHT, _PAD = 480, 140, 24


def alerts_per_hour_svg(counts: dict[str, list[int]]) -> str:
    """Return a line chart of alerts per hour, one polyline per ``site/line``."""
    if not counts:
        return '<p class="muted">No alerts in the last 24 hours.</p>'
    hours = len(next(iter(counts.values())))
    top = max(1, *(max(series) for series in counts.values()))
    step = (_WIDTH - 2 * _PAD) / max(hours - 1, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT + 30}" role="img" '
        f'aria-label="alerts per hour per line, last {hours} hours">',
        f'<text x="{_PAD}" y="12" class="axis">max {top}/h</text>',
        f'<line x1="{_PAD}" y1="{_HEIGHT}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT}" class="axis"/>',
    ]
    for index, (name, series) in enumerate(counts.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        points = " ".join(
            f"{_PAD + i * step:.1f},{_HEIGHT - (value / top) * (_HEIGHT - _PAD):.1f}"
            for i, value in enumerate(series)
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        parts.append(
            f'<text x="{_PAD + index * 120}" y="{_HEIGHT + 22}" fill="{colour}">'
            f"{escape(name)} ({sum(series)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def score_histogram_svg(normals: list[float], defects: list[float], threshold: float) -> str:
    """Return overlaid histograms of reviewed normals and defects with the threshold line."""
    if not normals and not defects:
        return '<p class="muted">No reviewed samples yet.</p>'
    every = np.asarray(normals + defects, dtype=np.float64)
    high = max(float(np.percentile(every, 99)), threshold * 1.5)
    edges = np.linspace(0.0, high, 31)
    normal_counts, _ = np.histogram(np.clip(normals, 0, high), bins=edges)
    defect_counts, _ = np.histogram(np.clip(defects, 0, high), bins=edges)
    top = max(1, int(normal_counts.max(initial=0)), int(defect_counts.max(initial=0)))
    bar = (_WIDTH - 2 * _PAD) / 30

    def bars(counts: np.ndarray, colour: str) -> str:
        return "".join(
            f'<rect x="{_PAD + i * bar:.1f}" y="{_HEIGHT - c / top * (_HEIGHT - _PAD):.1f}" '
            f'width="{bar - 1:.1f}" height="{c / top * (_HEIGHT - _PAD):.1f}" '
            f'fill="{colour}" fill-opacity="0.6"/>'
            for i, c in enumerate(counts)
            if c
        )

    x_threshold = _PAD + threshold / high * (_WIDTH - 2 * _PAD)
    return (
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT + 30}" role="img" '
        'aria-label="score distribution of reviewed normals and defects">'
        f"{bars(normal_counts, '#2f9e44')}{bars(defect_counts, '#d9480f')}"
        f'<line x1="{x_threshold:.1f}" y1="{_PAD - 8}" x2="{x_threshold:.1f}" y2="{_HEIGHT}" '
        'stroke="#000" stroke-dasharray="4 3"/>'
        f'<text x="{x_threshold + 4:.1f}" y="{_PAD}">threshold</text>'
        f'<line x1="{_PAD}" y1="{_HEIGHT}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT}" class="axis"/>'
        f'<text x="{_PAD}" y="{_HEIGHT + 22}" fill="#2f9e44">normal ({len(normals)})</text>'
        f'<text x="{_PAD + 130}" y="{_HEIGHT + 22}" fill="#d9480f">defect ({len(defects)})</text>'
        f'<text x="{_WIDTH - _PAD - 110}" y="{_HEIGHT + 22}">score / threshold</text>'
        "</svg>"
    )
