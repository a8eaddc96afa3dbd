"""What the feature apps register in the core (courses.features): panels, navigation links, group viewers."""

from courses import features
from labs import dashboard as labs_dashboard
from prizes import dashboard as prizes_dashboard
from prizes.access import judge_may_see_group
from projects import dashboard as projects_dashboard


def titles(role: str) -> list[str]:
    return [link.title for link in features.nav_links(role=role)]


def test_the_dashboard_panels_are_those_of_labs_projects_and_prizes_in_that_order():
    assert features._panels == [labs_dashboard.panel, projects_dashboard.panel, prizes_dashboard.panel]


def test_each_role_sees_its_links_in_the_navigations_order():
    assert titles("student") == ["Labs", "Final project", "Profile"]
    assert titles("judge") == ["Profile", "Judging"]
    assert (
        titles("ta")
        == titles("instructor")
        == [
            "Labs",
            "Profile",
            "Judging",
            "Grading queue",
            "Projects",
            "Prizes",
            "Roster",
            "Deadlines",
            "Extensions",
            "Audit log",
        ]
    )


def test_registering_twice_adds_nothing(monkeypatch):
    monkeypatch.setattr(features, "_nav_links", [])
    monkeypatch.setattr(features, "_panels", [])
    for _ in range(2):
        features.register_nav_link(url_name="courses:roster", title="Roster", roles={"ta"}, position=1)
        features.register_panel(labs_dashboard.panel)
    assert titles("ta") == ["Roster"]
    assert features._panels == [labs_dashboard.panel]


def test_the_judging_app_is_the_one_that_lets_a_judge_view_a_group():
    assert features._group_viewers == [judge_may_see_group]


def test_with_no_viewer_registered_nobody_outside_a_group_may_view_it(monkeypatch):
    monkeypatch.setattr(features, "_group_viewers", [])
    assert features.may_view_group(object(), object()) is False
