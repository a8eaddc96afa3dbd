"""A real LTI 1.3 platform on loopback for the tool's tests, built on the lti1p3platform package.

lti1p3platform signs the launches (the OIDC authorization step and the id_token) and issues the OAuth2 access tokens;
its grade and roster services are only outlines, so this LMS completes them: a membership container, line items
(listed, filtered, created) and scores, each behind a checked bearer token of the right scope and the media types the
services define (406 for a request that does not accept them, 415 for a body of another type). Lists are paged on
cue (``page_size``) with an RFC 8288 ``Link: <...>; rel="next"`` header whose cursor is opaque and mixed-case, as
Canvas's ``page=bookmark:...`` is; a page can be made to fail (``failing_page``). It also checks what the package
leaves out: the launch's redirect_uri is the registered one, and a client assertion names this token endpoint as its
audience.
"""

import base64
import html
import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LtiException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
TEACHING_ASSISTANT = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
LINEITEM_READ_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
SCORE = "application/vnd.ims.lis.v1.score+json"


def _media_types(value: str | None) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in (value or "").split(",") if part.strip()]


def _cursor(offset: int) -> str:
    return "bookmark:" + base64.urlsafe_b64encode(json.dumps([offset]).encode()).decode()


def _offset(cursor: str) -> int:
    [offset] = json.loads(base64.urlsafe_b64decode(cursor.removeprefix("bookmark:").encode()))
    return int(offset)


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class _Conf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, registration: Registration) -> None:
        self._registration = registration

    def get_registration_by_params(self, **kwargs) -> Registration:
        return self._registration


class _Query(Request):
    def build_metadata(self, query: dict):
        return {
            "method": "GET",
            "form_data": {},
            "get_data": query,
            "headers": {},
            "content_type": None,
            "path": "/auth",
            "json": None,
        }


class _Login(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class _Launch(LTIAdvantageMessageLaunchAbstract):
    def render_launch_form(self, launch_data, **kwargs) -> str:
        # The auto-submitting form an LMS sends to the browser.
        fields = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(launch_data[name])}">'
            for name in ("id_token", "state")
        )
        return (
            f'<form method="post" action="{html.escape(launch_data["launch_url"])}">{fields}</form>'
            "<script>document.forms[0].submit()</script>"
        )


class LoopbackLms:
    """One LMS: its issuer is its base URL; ``client_id`` is the tool's client there."""

    def __init__(self, *, client_id: str = "tool-client-1"):
        self.private_key, self.public_key = _key_pair()
        self.client_id = client_id
        self.tool_launch_url = ""
        self.tool_login_url = ""
        self.tool_key_set: dict = {"keys": []}
        self.members: dict[str, list[dict]] = {}
        self.line_items: dict[str, list[dict]] = {}
        self.scores: list[dict] = []
        self.refuse_scores = False
        self.page_size: int | None = None  # roster and line item lists: all at once unless set
        self.failing_page: int | None = None  # the page (1, 2, ...) of a list that answers 503
        self.requests: list[tuple[str, str]] = []  # (method, path and query) of each service request
        self.placed: list[dict] = []
        self._deep_link_requests: dict[str, dict] = {}
        self._seen_response_nonces: set[str] = set()
        self._pending: dict[str, dict] = {}
        self._pages: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.base_url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what staff paste into the tool ---------------------------------------------------------------------
    def endpoints(self) -> dict:
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "auth_login_url": self.base_url + "/auth",
            "auth_token_url": self.base_url + "/token",
            "key_set_url": self.base_url + "/jwks",
            "frame_origin": self.base_url,
        }

    def registration(self, deployment_id: str = "", *, deep_link: bool = False) -> Registration:
        registration = (
            Registration()
            .set_iss(self.issuer)
            .set_client_id(self.client_id)
            .set_deployment_id(deployment_id)
            .set_launch_url(self.tool_launch_url)
            .set_oidc_login_url(self.tool_login_url)
            .set_platform_private_key(self.private_key)
            .set_platform_public_key(self.public_key)
            .set_tool_key_set(self.tool_key_set)
        )
        if deep_link:
            registration.set_deeplink_launch_url(self.tool_launch_url)
        return registration

    # --- a launch ---------------------------------------------------------------------------------------------
    def start_launch(
        self, *, deployment_id, sub, roles, context_id="ctx-1", email="", name="", custom=None, deep_link=False
    ) -> str:
        """The URL the LMS sends the browser to: the tool's login initiation, third-party initiated. ``deep_link``:
        an LtiDeepLinkingRequest (the LMS's content-item selection) instead of a resource link launch."""
        hint = f"hint-{next(self._ids)}"
        self._pending[hint] = {
            "deployment_id": deployment_id,
            "sub": sub,
            "roles": roles,
            "context_id": context_id,
            "email": email,
            "name": name,
            "custom": custom or {},
            "deep_link": deep_link,
        }
        login = _Login(None, _Conf(registration=self.registration(deployment_id)))
        login.set_lti_message_hint(hint=hint)
        return login.initiate_login(sub)

    # --- the LMS's own pages, as a browser sees them --------------------------------------------------------------
    def page(self, body: str) -> str:
        """A page of this LMS with ``body``; returns its address."""
        path = f"/pages/{next(self._ids)}"
        self._pages[path] = (
            f'<!doctype html><html lang="en"><head><title>LMS course</title></head><body>{body}</body></html>'
        )
        return self.base_url + path

    def embedding_page(self, start_url: str) -> str:
        """The LMS's course page showing the tool in a frame, as Canvas and Moodle do: the login initiation is posted
        into the frame by a form the page submits itself."""
        url = urlsplit(start_url)
        fields = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in parse_qsl(url.query)
        )
        action = html.escape(url._replace(query="").geturl())
        return self.page(
            '<h1>LMS course</h1><iframe name="tool" title="Course tool" width="1100" height="800"></iframe>'
            f'<form id="launch" method="post" target="tool" action="{action}">{fields}</form>'
            '<script>document.getElementById("launch").submit()</script>'
        )

    def framing_page(self, src: str) -> str:
        """A page of this LMS that frames ``src`` directly."""
        return self.page(f'<iframe name="tool" title="Course tool" src="{html.escape(src)}"></iframe>')

    def _authorize(self, query: dict) -> tuple[int, str]:
        pending = self._pending.get(query.get("lti_message_hint", ""))
        if pending is None or query.get("login_hint") != pending["sub"]:
            return 400, "unknown launch"
        if query.get("redirect_uri") != self.tool_launch_url:
            return 400, "redirect_uri is not the registered launch URL"
        if query.get("response_type") != "id_token" or query.get("scope") != "openid":
            return 400, "not an OIDC implicit flow request"
        registration = self.registration(pending["deployment_id"], deep_link=pending["deep_link"])
        launch = _Launch(_Query(query), _Conf(registration=registration))
        launch.set_user_data(pending["sub"], pending["roles"], pending["name"] or None, pending["email"] or None)
        launch.set_launch_context_claim(pending["context_id"], context_title=f"LMS course {pending['context_id']}")
        launch.set_resource_link_claim(f"link-{pending['context_id']}")
        if pending["custom"]:
            launch.set_custom_parameters_claim(pending["custom"])
        launch.set_nrps(f"{self.base_url}/memberships/{pending['context_id']}")
        launch.set_ags(f"{self.base_url}/lineitems/{pending['context_id']}")
        if pending["deep_link"]:
            request_id = f"dl-{next(self._ids)}"
            self._deep_link_requests[request_id] = pending
            launch.set_dl(
                self.base_url + "/deep_link_return",
                title="Add an activity",
                accept_types={"ltiResourceLink"},
                extra_data={"request": request_id},
            )
        return 200, launch.lti_launch()

    def _deep_link_return(self, form: dict) -> tuple[int, dict]:
        """The tool's LtiDeepLinkingResponse, checked as an LMS checks it: signed by the tool's key from its JWKS,
        addressed to this LMS, from the client and deployment the request went to, answering a request of ours
        (its data), with a nonce not seen before. Each ltiResourceLink is placed; its line item is made."""
        conf = _Conf(registration=self.registration())
        try:
            items = conf.validate_deeplinking_resp(form)
            claims = jwt.decode(
                form["JWT"],
                conf.get_tool_public_key(),
                algorithms=["RS256"],
                audience=self.issuer,
                issuer=self.client_id,
            )
        except (LtiException, jwt.PyJWTError, KeyError) as exc:
            return 400, {"error": str(exc)}
        request = self._deep_link_requests.pop(
            (claims.get("https://purl.imsglobal.org/spec/lti-dl/claim/data") or {}).get("request", ""), None
        )
        if request is None:
            return 400, {"error": "the response answers no open deep linking request"}
        if claims.get("https://purl.imsglobal.org/spec/lti/claim/deployment_id") != request["deployment_id"]:
            return 400, {"error": "the response names another deployment"}
        nonce = claims.get("nonce")
        if not nonce or nonce in self._seen_response_nonces:
            return 400, {"error": "the response's nonce is missing or used"}
        self._seen_response_nonces.add(nonce)
        for item in items:
            if item["type"] != "ltiResourceLink":
                continue
            placed = {**item, "context_id": request["context_id"], "deployment_id": request["deployment_id"]}
            if item.get("lineItem"):
                line_item = {
                    **item["lineItem"],
                    "id": f"{self.base_url}/lineitems/{request['context_id']}/{next(self._ids)}",
                }
                self.line_items.setdefault(request["context_id"], []).append(line_item)
                placed["line_item_id"] = line_item["id"]
            self.placed.append(placed)
        return 200, {"placed": len(items)}

    def sign(self, claims: dict) -> str:
        """An id_token signed with this LMS's key, as an attacker with a token meant for someone else would hold."""
        kid = Registration.get_jwk(self.public_key)["kid"]
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": kid})

    # --- services -----------------------------------------------------------------------------------------------
    def _token(self, form: dict) -> tuple[int, dict]:
        conf = _Conf(registration=self.registration())
        try:
            answer = conf.get_access_token(form)
            jwt.decode(
                form["client_assertion"],
                conf.get_tool_public_key(),
                algorithms=["RS256"],
                audience=self.base_url + "/token",
            )
        except (LtiException, jwt.PyJWTError, KeyError) as exc:
            return 400, {"error": "invalid_client", "error_description": str(exc)}
        return 200, dict(answer)

    def _allowed(self, headers, *scopes: str) -> bool:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        try:
            return _Conf(registration=self.registration()).validate_token(token, allowed_scopes=list(scopes))
        except (LtiException, jwt.PyJWTError):
            return False

    def _paged(self, path: str, query: dict, items: list, media_type: str) -> tuple[int, object, dict]:
        """One page of ``items``; a next page is named by the Link header, with the request's other parameters."""
        if self.page_size is None:
            return 200, items, {"Content-Type": media_type}
        try:
            offset = _offset(query["page"]) if "page" in query else 0
        except (ValueError, TypeError, json.JSONDecodeError):
            return 400, {"error": "unknown page"}, {}
        if self.failing_page is not None and offset // self.page_size + 1 == self.failing_page:
            return 503, {"error": "the roster service is busy"}, {}
        headers = {"Content-Type": media_type}
        end = offset + self.page_size
        links = [f'<{self.base_url}{path}?{urlencode({**query, "page": _cursor(offset)})}>; rel="current"']
        if end < len(items):
            links.append(f'<{self.base_url}{path}?{urlencode({**query, "page": _cursor(end)})}>; rel="next"')
        links.append(f'<{self.base_url}{path}?{urlencode({**query, "page": _cursor(0)})}>; rel="first"')
        headers["Link"] = ",".join(links)
        return 200, items[offset:end], headers

    def _service(self, method: str, path: str, query: dict, headers, body: bytes) -> tuple[int, object, dict]:
        self.requests.append((method, path + (f"?{urlencode(query)}" if query else "")))
        accepts = _media_types(headers.get("Accept"))
        content_types = _media_types(headers.get("Content-Type"))
        if match := re.fullmatch(r"/memberships/([\w-]+)", path):
            if method != "GET":
                return 405, {"error": "method not allowed"}, {}
            if not self._allowed(headers, NRPS_SCOPE):
                return 401, {"error": "unauthorized"}, {}
            if MEMBERSHIP_CONTAINER not in accepts:
                return 406, {"error": f"this service answers {MEMBERSHIP_CONTAINER} only"}, {}
            status, members, answer_headers = self._paged(
                path, query, self.members.get(match[1], []), MEMBERSHIP_CONTAINER
            )
            if status != 200:
                return status, members, answer_headers
            container = {"id": self.base_url + path, "context": {"id": match[1]}, "members": members}
            return 200, container, answer_headers
        if match := re.fullmatch(r"/lineitems/([\w-]+)", path):
            items = self.line_items.setdefault(match[1], [])
            if method == "GET":
                if not self._allowed(headers, LINEITEM_SCOPE, LINEITEM_READ_SCOPE):
                    return 401, {"error": "unauthorized"}, {}
                if LINEITEM_CONTAINER not in accepts:
                    return 406, {"error": f"this service answers {LINEITEM_CONTAINER} only"}, {}
                wanted = [item for item in items if "tag" not in query or item.get("tag") == query["tag"]]
                return self._paged(path, query, wanted, LINEITEM_CONTAINER)
            if not self._allowed(headers, LINEITEM_SCOPE):
                return 401, {"error": "unauthorized"}, {}
            if content_types != [LINEITEM]:
                return 415, {"error": f"a line item is sent as {LINEITEM}"}, {}
            if accepts and LINEITEM not in accepts:
                return 406, {"error": f"this service answers {LINEITEM} only"}, {}
            item = {**json.loads(body), "id": f"{self.base_url}{path}/{next(self._ids)}"}
            items.append(item)
            return 201, item, {"Content-Type": LINEITEM}
        if match := re.fullmatch(r"/lineitems/([\w-]+)/(\d+)/scores", path):
            if method != "POST":
                return 405, {"error": "method not allowed"}, {}
            if not self._allowed(headers, SCORE_SCOPE):
                return 401, {"error": "unauthorized"}, {}
            if content_types != [SCORE]:
                return 415, {"error": f"a score is sent as {SCORE}"}, {}
            if self.refuse_scores:
                return 422, {"error": "the gradebook column is locked"}, {}
            self.scores.append({"line_item": f"{self.base_url}/lineitems/{match[1]}/{match[2]}", **json.loads(body)})
            return 200, {}, {}
        return 404, {"error": "not found"}, {}

    def _handler(self):
        lms = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, payload, content_type="application/json", headers=None):
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                headers = dict(headers or {})
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", content_type))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                if url.path == "/jwks":
                    return self._answer(200, {"keys": [Registration.get_jwk(lms.public_key)]})
                if url.path in lms._pages:
                    return self._answer(200, lms._pages[url.path], "text/html")
                if url.path == "/auth":
                    status, page = lms._authorize(query)
                    return self._answer(status, page, "text/html")
                status, payload, headers = lms._service("GET", url.path, query, self.headers, b"")
                return self._answer(status, payload, headers=headers)

            def do_POST(self):  # noqa: N802
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if url.path == "/deep_link_return":
                    return self._answer(*lms._deep_link_return(dict(parse_qsl(body.decode()))))
                if url.path == "/token":
                    return self._answer(*lms._token(dict(parse_qsl(body.decode()))))
                status, payload, headers = lms._service("POST", url.path, {}, self.headers, body)
                return self._answer(status, payload, headers=headers)

        return Handler


def launch_form(page: str) -> tuple[str, dict]:
    """The action and fields of the LMS's auto-submitting launch form, as a browser reads them."""
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page)[1])
    fields = {name: html.unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', page)}
    return action, fields
