from urllib.parse import urlsplit

import pytest
import requests

from lms.services import register_deployment
from tests.lms.platform import LEARNER, LoopbackLms, launch_form


@pytest.fixture
def lms(db, client):
    platform = LoopbackLms()
    platform.tool_login_url = "http://testserver/lti/login/"
    platform.tool_launch_url = "http://testserver/lti/launch/"
    yield platform
    platform.close()


@pytest.fixture
def deployed(lms, course, client):
    """The LMS registered for ``course`` with deployment dep-1, and the tool's keys given to the LMS."""
    deployment = register_deployment(course=course, actor=None, deployment_id="dep-1", **lms.endpoints())
    lms.tool_key_set = client.get("/lti/jwks/").json()
    return deployment


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def signed_launch(lms, client, **launch) -> dict:
    """Runs the browser's part of a launch up to the LMS's signed form: login initiation at the tool, the tool's
    redirect to the LMS, and the LMS's answer. Returns the form's fields (id_token, state)."""
    launch.setdefault("roles", [LEARNER])
    start = lms.start_launch(**launch)
    answer = client.get(local(start))
    assert answer.status_code == 302, answer.content
    page = requests.get(answer["Location"], timeout=10)
    assert page.status_code == 200, page.text
    action, fields = launch_form(page.text)
    assert action == "http://testserver/lti/launch/"
    return fields


@pytest.fixture
def section(deployed, lms, client, course, student):
    """The LMS section ctx-1, as its first launch (by ``student``) records it."""
    from lms.models import Section

    fields = signed_launch(lms, client, deployment_id="dep-1", sub="lms-student", email=student.user.email)
    assert client.post("/lti/launch/", fields).status_code == 302
    client.logout()
    return Section.objects.get(deployment=deployed, context_id="ctx-1")
