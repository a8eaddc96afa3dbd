"""The Celery app; its configuration lives in the settings under the CELERY_ prefix."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("course_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["worker"])


@signals.worker_init.connect
def poll_the_embedded_broker_often(**_) -> None:
    """Set how often a worker polls the embedded (SQL table) broker for its next message.

    kombu's SQL transport hands every transport option to SQLAlchemy's ``create_engine()``, which refuses one it does
    not know, so the interval is the transport's class default rather than a ``polling_interval`` option.
    """
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("sqla+"):
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = settings.EMBEDDED_BROKER_POLL_SECONDS
