"""Navigation links by the viewer's role in the current course, as the apps registered them (courses.features)."""

from django import template
from django.urls import NoReverseMatch, reverse

from courses.features import nav_links

register = template.Library()


@register.simple_tag(takes_context=True)
def course_nav_links(context):
    request = context.get("request")
    member = getattr(request, "member", None)
    course = getattr(request, "course", None)
    if member is None or course is None:
        return []
    links = []
    for link in nav_links(role=member.role):
        try:
            links.append({"url": reverse(link.url_name, kwargs={"course_slug": course.slug}), "title": link.title})
        except NoReverseMatch:  # an installed app whose pages this site's URL configuration leaves out
            continue
    return links
