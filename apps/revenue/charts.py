"""Server-rendered SVG charts for the revenue dashboards (no JavaScript, no library).

Each function takes plain numbers and labels (already aggregated by a selector) and returns
safe SVG markup; every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#c62828", "#5d4037")
_FONT = "font:11px sans-serif"


def _num(value) -> float:
    return float(value or 0)


def _short(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _svg(width: int, height: int, label: str, parts: list[str]) -> SafeString:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}" '
        f'style="max-width:{width}px;{_FONT}">'
    )
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308 - numbers and escaped text


def bar_chart(
    rows: Sequence[tuple[str, object, str]], *, label: str, width: int = 720, color=PALETTE[0]
) -> SafeString:
    """Horizontal bars: `rows` = (label, value, value text)."""
    row_h, pad_l = 24, 170
    pad_r = min(max((len(text) for _, _, text in rows), default=0) * 6.2 + 16, width / 2)
    height = max(len(rows), 1) * row_h + 8
    biggest = max((_num(v) for _, v, _ in rows), default=0) or 1
    plot_w = width - pad_l - pad_r
    parts = []
    for index, (name, value, text) in enumerate(rows):
        y = 4 + index * row_h
        bar_w = plot_w * _num(value) / biggest
        parts.append(
            f"<g><title>{escape(name)}: {escape(text)}</title>"
            f'<text x="{pad_l - 6}" y="{y + 15}" text-anchor="end">{escape(name[:28])}</text>'
            f'<rect x="{pad_l}" y="{y + 3}" width="{max(bar_w, 0.5):.1f}" height="{row_h - 8}" '
            f'fill="{color}" opacity="0.8"/>'
            f'<text x="{pad_l + bar_w + 6:.1f}" y="{y + 15}">{escape(text)}</text></g>'
        )
    if not rows:
        parts.append(f'<text x="{pad_l}" y="18">No data yet.</text>')
    return _svg(width, height, label, parts)


def stacked_columns(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[object]]],
    *,
    label: str,
    width: int = 720,
    height: int = 220,
) -> SafeString:
    """Columns per category, stacked by series: `series` = (name, values per category)."""
    pad_l, pad_r, pad_t, pad_b = 48, 12, 22, 34
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    count = max(len(categories), 1)
    step = plot_w / count
    totals = [sum(_num(values[i]) for _, values in series) for i in range(len(categories))]
    top = max(totals, default=0) or 1
    parts = [
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}" '
        'stroke="#999" stroke-width="0.5"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 4}" text-anchor="end">{_short(top)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end">0</text>',
    ]
    label_every = max(1, len(categories) // 12)
    for index, category in enumerate(categories):
        x = pad_l + index * step + step * 0.15
        bar_w = max(step * 0.7, 1)
        y = pad_t + plot_h
        tips = []
        for s_index, (name, values) in enumerate(series):
            value = _num(values[index])
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s_index % len(PALETTE)]}" opacity="0.85"/>'
            )
            tips.append(f"{name}: {_short(value)}")
        if tips:
            parts.append(
                f'<rect x="{x:.1f}" y="{pad_t}" width="{bar_w:.1f}" height="{plot_h}" '
                f'fill="transparent"><title>{escape(category)}: {escape(", ".join(tips))}</title>'
                "</rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - pad_b + 14}" text-anchor="middle">'
                f"{escape(category)}</text>"
            )
    legend_x = pad_l
    for s_index, (name, _) in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="4" width="10" height="10" '
            f'fill="{PALETTE[s_index % len(PALETTE)]}"/>'
            f'<text x="{legend_x + 14}" y="13">{escape(name)}</text>'
        )
        legend_x += 14 + 7 * len(name) + 16
    return _svg(width, height, label, parts)


def funnel(steps: Sequence[tuple[str, int]], *, label: str, width: int = 720) -> SafeString:
    """A funnel: one centred bar per step, with the count and the share of the first step."""
    row_h = 34
    height = len(steps) * row_h + 8
    first = steps[0][1] if steps else 0
    parts = []
    for index, (name, count) in enumerate(steps):
        share = count / first if first else 0.0
        bar_w = max((width - 260) * share, 2)
        x = 130 + ((width - 260) - bar_w) / 2
        y = 4 + index * row_h
        previous = steps[index - 1][1] if index else None
        step_rate = f" ({count / previous:.0%} of previous)" if previous else ""
        parts.append(
            f"<g><title>{escape(name)}: {count}{escape(step_rate)}</title>"
            f'<text x="122" y="{y + 20}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{bar_w:.1f}" height="{row_h - 8}" '
            f'fill="{PALETTE[index % len(PALETTE)]}" opacity="0.85"/>'
            f'<text x="{width - 122}" y="{y + 20}">{count:,} · {share:.0%}</text></g>'
        )
    return _svg(width, height, label, parts)


def money_text(amount: Decimal | None, currency: str) -> str:
    from apps.revenue.money import format_money

    return format_money(amount or Decimal("0"), currency)
