from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"

    def ready(self) -> None:
        from courses.features import register_nav_link, register_panel
        from projects.dashboard import panel

        register_panel(panel)
        register_nav_link(url_name="projects:home", title="Final project", roles={"student"}, position=20)
        register_nav_link(url_name="projects:staff_home", title="Projects", roles={"ta", "instructor"}, position=60)
