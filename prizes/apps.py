from django.apps import AppConfig


class PrizesConfig(AppConfig):
    name = "prizes"

    def ready(self) -> None:
        from courses.features import register_group_viewer, register_nav_link, register_panel
        from prizes.access import judge_may_see_group
        from prizes.dashboard import panel

        register_panel(panel)
        register_nav_link(
            url_name="prizes:judge_home", title="Judging", roles={"judge", "ta", "instructor"}, position=40
        )
        register_nav_link(url_name="prizes:staff_home", title="Prizes", roles={"ta", "instructor"}, position=70)
        # A judge assigned to a group's entry may open its slides; the projects app asks through courses.features.
        register_group_viewer(judge_may_see_group)
