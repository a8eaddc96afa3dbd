"""What the feature apps add to the core, registered from their ``AppConfig.ready()``: dashboard panels, navigation
links, and who besides a group's members may view it. The core imports no feature app; it reads this registry, so an
app that is not installed simply contributes nothing."""

from collections.abc import Callable
from dataclasses import dataclass

# panel(*, course, member) -> {"template": ..., **context} for the dashboard, or None when it has nothing to show.
Panel = Callable[..., dict | None]
# viewer(user, group) -> whether this user may open the group's materials although she is not one of its members.
GroupViewer = Callable[..., bool]


@dataclass(frozen=True)
class NavLink:
    """A link of the course navigation: a URL name taking ``course_slug``, shown to the given roles."""

    url_name: str
    title: str
    roles: frozenset[str]
    # Links are shown by this number, not by registration order, so that each app's links can sit among the others'.
    position: int


_panels: list[Panel] = []
_nav_links: list[NavLink] = []
_group_viewers: list[GroupViewer] = []


def register_panel(panel: Panel) -> None:
    """Add a dashboard panel; panels are shown in the order they were registered (the order of INSTALLED_APPS)."""
    if panel not in _panels:
        _panels.append(panel)


def dashboard_panels(*, course, member) -> list[dict]:
    """The panels that have something to show this member, each a template name and its context."""
    return [shown for panel in _panels if (shown := panel(course=course, member=member))]


def register_nav_link(*, url_name: str, title: str, roles: set[str], position: int) -> None:
    link = NavLink(url_name=url_name, title=title, roles=frozenset(roles), position=position)
    if link not in _nav_links:
        _nav_links.append(link)


def nav_links(*, role: str) -> list[NavLink]:
    """The links a member with this role sees, in their position order."""
    return sorted((link for link in _nav_links if role in link.roles), key=lambda link: link.position)


def register_group_viewer(viewer: GroupViewer) -> None:
    """Let another app grant access to a group (the judging app: a judge assigned to it)."""
    if viewer not in _group_viewers:
        _group_viewers.append(viewer)


def may_view_group(user, group) -> bool:
    """Whether any registered app lets ``user`` view ``group``; with none registered, nobody outside it may."""
    return any(viewer(user, group) for viewer in _group_viewers)
