"""Server-side SVG of the bias audit: prints and works without JavaScript."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

GROUP_ORDER = ["LF", "LM", "DF", "DM"]
GROUP_NAMES = {"LF": "lighter female", "LM": "lighter male", "DF": "darker female", "DM": "darker male"}


def _groups(evaluation) -> dict:
    return ((evaluation.groups or {}).get("public") or {}) if evaluation else {}


def audit_chart(evaluation, reference=None, *, width: int = 520, height: int = 260) -> str:
    """Bars of each group's detection rate at 5% FPR with its 95% interval, the reference beside in grey."""
    mine, ref = _groups(evaluation), _groups(reference)
    groups = [g for g in GROUP_ORDER if g in mine] + sorted(g for g in mine if g not in GROUP_ORDER)
    if not groups:
        return ""
    left, bottom, top = 44, 36, 12
    plot_h = height - bottom - top
    slot = (width - left - 10) / len(groups)
    bar = slot / 3

    def y(value: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, value)))

    parts = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="#ddd"/>'
                '<text x="{}" y="{:.1f}" font-size="11" text-anchor="end">{}</text>',
                left,
                width - 10,
                y(tick),
                y(tick),
                left - 6,
                y(tick) + 4,
                f"{tick:.2f}",
            )
        )
    for i, group in enumerate(groups):
        x0 = left + i * slot + slot / 6
        row = mine[group]
        value = row.get("tpr")
        if value is not None:
            parts.append(
                format_html(
                    '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#a31f34">'
                    "<title>{}: {:.3f}</title></rect>",
                    x0,
                    y(value),
                    bar,
                    y(0) - y(value),
                    GROUP_NAMES.get(group, group),
                    value,
                )
            )
            low, high = row.get("tpr_ci_low"), row.get("tpr_ci_high")
            if low is not None and high is not None:
                cx = x0 + bar / 2
                parts.append(
                    format_html(
                        '<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#000"/>', cx, cx, y(low), y(high)
                    )
                )
        ref_value = (ref.get(group) or {}).get("tpr")
        if ref_value is not None:
            parts.append(
                format_html(
                    '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#9aa1ab">'
                    "<title>reference {}: {:.3f}</title></rect>",
                    x0 + bar + 2,
                    y(ref_value),
                    bar,
                    y(0) - y(ref_value),
                    group,
                    ref_value,
                )
            )
        parts.append(
            format_html(
                '<text x="{:.1f}" y="{}" font-size="12" text-anchor="middle">{}</text>', x0 + bar, height - 14, group
            )
        )
    body = format_html_join("", "{}", ((p,) for p in parts))
    return mark_safe(  # noqa: S308 - every piece above was built with format_html
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" '
            'aria-label="Detection rate per group at 5% false-positive rate" class="chart">{}</svg>',
            width,
            height,
            body,
        )
    )
