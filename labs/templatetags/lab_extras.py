"""Template helpers for lab pages: metric formatting and dictionary look-ups."""

from django import template
from django.utils.safestring import mark_safe

from labs import metriclabels

register = template.Library()


@register.simple_tag
def metric(values, key):
    value = (values or {}).get(key)
    if value is None:
        return mark_safe('<span class="muted" title="not available">n/a</span>')
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@register.filter
def metric_label(lab, key):
    """The label the lab's grader declares for a metric key: ``{{ lab|metric_label:lab.primary_metric }}``."""
    return metriclabels.label(lab.kind, key)


@register.filter
def group_metric_label(lab, key):
    """The label the lab's grader declares for a per-group column: ``{{ lab|group_metric_label:"tpr" }}``."""
    return metriclabels.group_label(lab.kind, key)


@register.simple_tag
def metric_rows(lab, evaluation, private_visible):
    return metriclabels.metric_rows(lab, evaluation.metrics, private_visible=bool(private_visible))


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key, [])


GROUP_NAMES = {
    "LF": "lighter-skinned women",
    "LM": "lighter-skinned men",
    "DF": "darker-skinned women",
    "DM": "darker-skinned men",
}


@register.filter
def group_name(code):
    return f"{GROUP_NAMES[code]} ({code})" if code in GROUP_NAMES else code
