from django.apps import AppConfig

STAFF = {"ta", "instructor"}


class CoursesConfig(AppConfig):
    name = "courses"
    verbose_name = "Courses"

    def ready(self) -> None:
        from courses.features import register_nav_link

        register_nav_link(
            url_name="courses:profile", title="Profile", roles={"student", "ta", "instructor", "judge"}, position=30
        )
        register_nav_link(url_name="courses:roster", title="Roster", roles=STAFF, position=80)
        register_nav_link(url_name="courses:deadlines", title="Deadlines", roles=STAFF, position=90)
        register_nav_link(url_name="courses:extensions", title="Extensions", roles=STAFF, position=100)
        register_nav_link(url_name="courses:audit", title="Audit log", roles=STAFF, position=110)
