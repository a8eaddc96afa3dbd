"""Server-side SVG of the bias audit: prints and works without JavaScript."""

from django.utils.html import escape
from django.utils.safestring import mark_safe

GROUP_ORDER = ["LF", "LM", "DF", "DM"]
GROUP_NAMES = {"LF": "lighter female", "LM": "lighter male", "DF": "darker female", "DM": "darker male"}


def _groups(evaluation) -> dict:
    return ((evaluation.groups or {}).get("public") or {}) if evaluation else {}


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def audit_chart(evaluation, reference=None, *, width: int = 520, height: int = 260) -> str:
    """Bars of each group's detection rate at 5% FPR with its 95% interval, the reference beside in grey.

    Numbers are formatted as numbers and every text is escaped, so nothing from a result can inject markup.
    """
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
            f'<line x1="{left}" x2="{width - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick:.2f}</text>'
        )
    for i, group in enumerate(groups):
        x0 = left + i * slot + slot / 6
        row = mine[group] or {}
        name = escape(GROUP_NAMES.get(group, group))
        value = _number(row.get("tpr"))
        if value is not None:
            parts.append(
                f'<rect x="{x0:.1f}" y="{y(value):.1f}" width="{bar:.1f}" height="{y(0) - y(value):.1f}" '
                f'fill="#a31f34"><title>{name}: {value:.3f}</title></rect>'
            )
            low, high = _number(row.get("tpr_ci_low")), _number(row.get("tpr_ci_high"))
            if low is not None and high is not None:
                cx = x0 + bar / 2
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(low):.1f}" y2="{y(high):.1f}" stroke="#000"/>')
        ref_value = _number((ref.get(group) or {}).get("tpr"))
        if ref_value is not None:
            parts.append(
                f'<rect x="{x0 + bar + 2:.1f}" y="{y(ref_value):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(ref_value):.1f}" fill="#9aa1ab"><title>reference {escape(group)}: '
                f"{ref_value:.3f}</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + bar:.1f}" y="{height - 14}" font-size="12" text-anchor="middle">{escape(group)}</text>'
        )
    return mark_safe(  # noqa: S308 - numbers are formatted as numbers and every text above is escaped
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Detection rate per group at 5% false-positive rate" class="chart">{"".join(parts)}</svg>'
    )
