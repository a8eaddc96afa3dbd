"""Template tags that show a moment in the course's time zone, labelled, with the viewer's local time beside it."""

from django import template
from django.utils.html import format_html

from courses.deadlines import format_course_time

register = template.Library()


@register.simple_tag
def course_time(moment, course):
    """<time> with the course-zone text; static/js/times.js adds the viewer's local time next to it."""
    if moment is None:
        return ""
    return format_html(
        '<time datetime="{}" class="course-time">{}</time>',
        moment.isoformat(),
        format_course_time(moment, course),
    )


@register.simple_tag
def countdown(moment):
    if moment is None:
        return ""
    return format_html('<span class="countdown" data-until="{}"></span>', moment.isoformat())
