"""Server-rendered SVG charts for the operator console (no JavaScript, no vendored library)."""

from __future__ import annotations

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from apps.events.selectors import EndpointHealth

_W, _H = 720, 200
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 44, 52, 14, 26
_OK, _FAIL, _P50, _P95 = "#2e7d32", "#c62828", "#1565c0", "#ef6c00"


def _fmt_ms(value: float) -> str:
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def endpoint_health_svg(health: EndpointHealth) -> SafeString:
    """Attempts per bucket (stacked: succeeded / failed) with p50 and p95 request latency."""
    n = len(health.buckets)
    plot_w = _W - _PAD_L - _PAD_R
    plot_h = _H - _PAD_T - _PAD_B
    step = plot_w / max(n, 1)
    max_count = max((b.attempts for b in health.buckets), default=0) or 1
    max_ms = max((b.p95_ms or 0 for b in health.buckets), default=0) or 1
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="100%" '
        f'role="img" aria-label="Attempts and latency over time" '
        f'style="max-width:{_W}px;font:11px sans-serif">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" '
        f'fill="none" stroke="#999" stroke-width="0.5"/>',
    ]
    for index, bucket in enumerate(health.buckets):
        if not bucket.attempts:
            continue
        x = _PAD_L + index * step + 1
        ok_h = plot_h * bucket.succeeded / max_count
        fail_h = plot_h * (bucket.attempts - bucket.succeeded) / max_count
        y_ok = _PAD_T + plot_h - ok_h
        title = escape(
            f"{bucket.start:%m-%d %H:%M} UTC: {bucket.attempts} attempts, "
            f"{bucket.succeeded} ok"
            + (f", p50 {_fmt_ms(bucket.p50_ms)}, p95 {_fmt_ms(bucket.p95_ms)}" if bucket.p50_ms is not None else "")
        )  # fmt: skip
        parts.append(
            f"<g><title>{title}</title>"
            f'<rect x="{x:.1f}" y="{y_ok:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{ok_h:.1f}" fill="{_OK}" opacity="0.55"/>'
            f'<rect x="{x:.1f}" y="{y_ok - fail_h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{fail_h:.1f}" fill="{_FAIL}" opacity="0.7"/></g>'
        )
    for key, colour in (("p50_ms", _P50), ("p95_ms", _P95)):
        points = [
            f"{_PAD_L + (i + 0.5) * step:.1f},"
            f"{_PAD_T + plot_h - plot_h * getattr(b, key) / max_ms:.1f}"
            for i, b in enumerate(health.buckets)
            if getattr(b, key) is not None
        ]
        if len(points) == 1:
            x, y = points[0].split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
        elif points:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                f'stroke-width="1.5"/>'
            )
    parts += [
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 9}" text-anchor="end">{max_count}</text>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + plot_h}" text-anchor="end">0</text>',
        f'<text x="{_W - _PAD_R + 4}" y="{_PAD_T + 9}">{_fmt_ms(max_ms)}</text>',
        f'<text x="{_W - _PAD_R + 4}" y="{_PAD_T + plot_h}">0</text>',
        f'<text x="{_PAD_L}" y="{_H - 8}">{health.since:%m-%d %H:%M} UTC</text>',
        f'<text x="{_W - _PAD_R}" y="{_H - 8}" text-anchor="end">now</text>',
        f'<text x="{_PAD_L + plot_w / 2:.0f}" y="{_H - 8}" text-anchor="middle">'
        f'<tspan fill="{_OK}">■ ok</tspan> <tspan fill="{_FAIL}">■ failed</tspan> '
        f'<tspan fill="{_P50}">— p50</tspan> <tspan fill="{_P95}">— p95</tspan></text>',
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 - built from numbers and escaped text


def endpoint_health_html(health: EndpointHealth) -> SafeString:
    rate = health.success_rate
    summary = format_html(
        "<p><strong>{}</strong> success over the last 24 h ({} of {} attempts) · "
        "<strong>{}</strong> waiting · <strong>{}</strong> dead</p>",
        "-" if rate is None else f"{rate:.1%}",
        health.succeeded,
        health.attempts,
        health.waiting,
        health.dead,
    )
    return format_html("{}{}", summary, endpoint_health_svg(health))
