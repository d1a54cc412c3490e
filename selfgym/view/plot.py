"""Inline SVG line plots for the iteration timeline (no plotting library, no scripts)."""

from __future__ import annotations

from html import escape

__all__ = ["Series", "line_plot"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

# (label, points (x, y), optional band (x, low, high))
Series = tuple[str, list[tuple[float, float]], list[tuple[float, float, float]]]


def line_plot(series: list[Series], *, title: str, y_range: tuple[float, float] | None = None,
              width: int = 640, height: int = 260) -> str:
    """An SVG plot of ``series`` over iterations, with shaded bands (confidence intervals)."""
    left, right, top, bottom = 48, 150, 24, 32
    xs = [x for _, pts, band in series for x, *_ in [*pts, *band]]
    ys = [y for _, pts, _ in series for _, y in pts] + [v for *_, band in series for _, lo, hi in band for v in (lo, hi)]
    if not xs:
        return f"<svg class='plot' width='{width}' height='40'><text x='4' y='24'>{escape(title)}: no data yet</text></svg>"
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range or (min(ys), max(ys))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    out = [f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
           f"aria-label='{escape(title)}'>", f"<text x='{left}' y='16' font-weight='bold'>{escape(title)}</text>",
           f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' stroke='#999'/>"]
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        out.append(f"<text x='{left - 4}' y='{py(y) + 4:.1f}' text-anchor='end' font-size='11'>{y:.3g}</text>")
    ticks = sorted(set(xs))
    step = max(1, len(ticks) // 10)
    for x in ticks[::step]:
        out.append(f"<text x='{px(x):.1f}' y='{height - bottom + 14}' text-anchor='middle' font-size='11'>{x:g}</text>")
    for i, (label, points, band) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        if band:
            upper = " ".join(f"{px(x):.1f},{py(hi):.1f}" for x, _, hi in band)
            lower = " ".join(f"{px(x):.1f},{py(lo):.1f}" for x, lo, _ in reversed(band))
            out.append(f"<polygon points='{upper} {lower}' fill='{colour}' fill-opacity='0.15' stroke='none'/>")
        if points:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
            out.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='2'/>")
            for x, y in points:
                out.append(f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='3' fill='{colour}'>"
                           f"<title>{escape(label)} @ {x:g}: {y:.4g}</title></circle>")
        out.append(f"<text x='{width - right + 8}' y='{top + 14 + 16 * i}' fill='{colour}' font-size='12'>"
                   f"{escape(label)}</text>")
    out.append(f"<text x='{left + plot_w / 2}' y='{height - 2}' text-anchor='middle' font-size='11'>iteration</text>")
    out.append("</svg>")
    return "".join(out)
