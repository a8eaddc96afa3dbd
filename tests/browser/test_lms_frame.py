"""A launch inside the LMS's frame, in a real Chromium: the LMS's course page (one loopback origin) frames the tool
(another) and posts the login initiation into the frame; the student lands on her lab signed in, inside the frame.

A launch in a frame is a cross-site flow: the LMS's page is the top-level site, so the tool's cookies reach the frame
only as ``SameSite=None; Secure``, and a browser keeps a Secure cookie only from HTTPS. The tool therefore runs under
gunicorn with TLS, on a certificate this test makes for localhost; Chromium is told to accept it
(``ignore_https_errors``), as it cannot trust a certificate made a moment ago. The LMS stays on plain HTTP at
127.0.0.1, another site than localhost.

This Chromium blocks third-party cookies by default, and then no launch in a frame keeps its state: the tool refuses
it with a message. Her browser here allows them, as its setting "Allow third-party cookies" does (the profile's
``cookie_controls_mode`` 0), which is what an LMS asks of its students' browsers for tools in frames."""

import datetime
import ipaddress
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.db import connections

from lms.services import register_deployment
from lms.tool import tool_jwks
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.conftest import WebProcess
from tests.factories import make_music_lab
from tests.lms.platform import LEARNER, LoopbackLms

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def self_signed_certificate(directory) -> tuple:
    """A certificate for localhost and 127.0.0.1 and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tool.crt", directory / "tool.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tool(tmp_path):
    """The site over HTTPS at https://localhost:<port>."""
    web = WebProcess(tmp_path / "web.log", tls=self_signed_certificate(tmp_path))
    try:
        web.wait_ready()
        yield web
    finally:
        web.stop()


@pytest.fixture
def chromium(monkeypatch, tmp_path):
    """Her browser: a profile of its own that allows third-party cookies (see the module's note)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(
        json.dumps({"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}})
    )

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            ignore_https_errors=True,
            locale="en-US",
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            connections.close_all()


def test_a_launch_in_the_lms_frame_signs_her_in_there_and_only_that_lms_may_frame_the_tool(
    tool, chromium, course, student
):
    lab = make_music_lab(course)
    lms = LoopbackLms()
    stranger = LoopbackLms(client_id="never-registered")
    try:
        lms.tool_login_url = f"{tool.url}/lti/login/"
        lms.tool_launch_url = f"{tool.url}/lti/launch/"
        register_deployment(course=course, actor=None, deployment_id="dep-1", **lms.endpoints())
        lms.tool_key_set = tool_jwks()
        start = lms.start_launch(
            deployment_id="dep-1", sub="lms-ada", roles=[LEARNER], email=student.user.email, custom={"lab": lab.slug}
        )
        lab_url = f"{tool.url}/courses/{course.slug}/labs/{lab.slug}/"

        page = chromium.new_page()
        refusals = []
        page.on(
            "console", lambda message: refusals.append(message.text.strip()) if "frame-ancestors" in message.text else 0
        )
        with page.expect_response(lambda response: response.url == lab_url) as landing:
            page.goto(lms.embedding_page(start))
        frame = page.frame(name="tool")
        frame.wait_for_load_state("load")
        # She is on her lab, signed in, inside the LMS's frame; the LMS's page is still the top-level page.
        assert frame.url == lab_url
        assert page.url.startswith(lms.base_url)
        assert frame.get_by_text(student.user.email).is_visible()
        assert frame.get_by_role("heading", name=lab.title).first.is_visible()

        # The session cookie of this flow crosses sites; the lab page may be framed by this LMS only.
        [session] = [cookie for cookie in chromium.cookies(tool.url) if cookie["name"] == "sessionid"]
        assert (session["sameSite"], session["secure"], session["httpOnly"]) == ("None", True, True)
        response = landing.value
        policy = response.header_value("content-security-policy")
        assert f"frame-ancestors {lms.base_url};" in policy
        assert response.header_value("x-frame-options") is None

        # A page of an LMS that is not registered frames the same lab with her cookie: the browser refuses it.
        other = chromium.new_page()
        other.on(
            "console", lambda message: refusals.append(message.text.strip()) if "frame-ancestors" in message.text else 0
        )
        with other.expect_response(lambda response: response.url == lab_url) as framed:
            other.goto(stranger.framing_page(lab_url))
        assert framed.value.status == 200  # the tool answered; the browser would not show it there
        refused = other.frame(name="tool")
        refused.wait_for_load_state("load")
        assert refused.url != lab_url
        assert refused.get_by_text(student.user.email).count() == 0
        assert refusals == [
            f"Framing '{tool.url}/' violates the following Content Security Policy directive: "
            f'"frame-ancestors {lms.base_url}". The request has been blocked.'
        ]
    finally:
        lms.close()
        stranger.close()
