"""Navigation links by the viewer's role in the current course."""

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()

# (url name, title, roles that see it); apps that are not installed simply contribute no link.
LINKS = [
    ("labs:index", "Labs", {"student", "ta", "instructor"}),
    ("projects:home", "Final project", {"student"}),
    ("courses:profile", "Profile", {"student", "ta", "instructor", "judge"}),
    ("prizes:judge_home", "Judging", {"judge", "ta", "instructor"}),
    ("labs:queue", "Grading queue", {"ta", "instructor"}),
    ("projects:staff_home", "Projects", {"ta", "instructor"}),
    ("prizes:staff_home", "Prizes", {"ta", "instructor"}),
    ("courses:roster", "Roster", {"ta", "instructor"}),
    ("courses:deadlines", "Deadlines", {"ta", "instructor"}),
    ("courses:extensions", "Extensions", {"ta", "instructor"}),
    ("courses:audit", "Audit log", {"ta", "instructor"}),
]


@register.simple_tag(takes_context=True)
def course_nav_links(context):
    request = context.get("request")
    member = getattr(request, "member", None)
    course = getattr(request, "course", None)
    if member is None or course is None:
        return []
    links = []
    for name, title, roles in LINKS:
        if member.role not in roles:
            continue
        try:
            links.append({"url": reverse(name, kwargs={"course_slug": course.slug}), "title": title})
        except NoReverseMatch:
            continue
    return links
