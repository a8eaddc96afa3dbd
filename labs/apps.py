from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "labs"

    def ready(self) -> None:
        from courses.deadlines import register_reopen_check
        from labs.services import released_labs_refuse_reopening

        register_reopen_check(released_labs_refuse_reopening)
