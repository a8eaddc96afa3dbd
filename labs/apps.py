from django.apps import AppConfig

STAFF = {"ta", "instructor"}


class LabsConfig(AppConfig):
    name = "labs"

    def ready(self) -> None:
        from courses.deadlines import register_reopen_check
        from courses.features import register_nav_link, register_panel
        from labs import checks  # noqa: F401 - registers the check that lab rows agree with the grader
        from labs.dashboard import panel
        from labs.services import released_labs_refuse_reopening

        register_reopen_check(released_labs_refuse_reopening)
        register_panel(panel)
        register_nav_link(url_name="labs:index", title="Labs", roles={"student", *STAFF}, position=10)
        register_nav_link(url_name="labs:queue", title="Grading queue", roles=STAFF, position=50)
