"""The tool's side of LTI 1.3 as pylti1p3 sees it: registrations and deployments read from the database, and the
tool's key pairs (one per registration, made when staff register an LMS), and the connector its service calls go
through, which reads an LMS's paged lists as RFC 8288 writes them."""

import json
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from pylti1p3.deployment import Deployment as LtiDeployment
from pylti1p3.exception import LtiException
from pylti1p3.registration import Registration as LtiRegistration
from pylti1p3.service_connector import ServiceConnector as LtiServiceConnector
from pylti1p3.tool_config.abstract import ToolConfAbstract

from lms.models import Deployment, Registration


def new_key_pair() -> tuple[str, str]:
    """A fresh RSA key (PEM, to be sealed by ``lms.keyring`` before it is stored) and its JWK thumbprint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, JWK.from_pem(pem.encode()).thumbprint()


def public_jwk(registration: Registration) -> dict:
    jwk = json.loads(JWK.from_pem(registration.private_key_pem.encode()).export_public())
    return {**jwk, "kid": registration.tool_kid, "alg": "RS256", "use": "sig"}


def tool_jwks() -> dict:
    """Every registration's public key: an LMS picks its own by ``kid``."""
    return {"keys": [public_jwk(registration) for registration in Registration.objects.order_by("pk")]}


def as_lti_registration(registration: Registration) -> LtiRegistration:
    private_pem = registration.private_key_pem
    public_pem = (
        serialization.load_pem_private_key(private_pem.encode(), password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return (
        LtiRegistration()
        .set_issuer(registration.issuer)
        .set_client_id(registration.client_id)
        .set_auth_login_url(registration.auth_login_url)
        .set_auth_token_url(registration.auth_token_url)
        .set_key_set_url(registration.key_set_url)
        .set_tool_private_key(private_pem)
        .set_tool_public_key(public_pem)
    )


# A list longer than this many pages is taken for an LMS that never ends its list.
MAX_PAGES = 1000


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def next_page_url(url: str, link_header: str) -> str | None:
    """The ``rel="next"`` target of a Link header, resolved against the page's own address. It must stay on the
    LMS's site: the tool's bearer token goes with the request."""
    for link in requests.utils.parse_header_links(link_header or ""):
        if "next" in link.get("rel", "").lower().split():
            target = urljoin(url, link["url"])
            if _origin(target) != _origin(url):
                raise LtiException(f"The LMS's next page {target} is on another site than {url}.")
            return target
    return None


class ServiceConnector(LtiServiceConnector):
    """pylti1p3's connector, with the next page read from the Link header as it is written: pylti1p3 lowercases the
    whole header, which breaks a case-sensitive cursor such as Canvas's ``page=bookmark:WzE...``."""

    def make_service_request(self, scopes, url, *args, **kwargs):
        kwargs["case_insensitive_headers"] = True
        answer = super().make_service_request(scopes, url, *args, **kwargs)
        answer["next_page_url"] = next_page_url(url, answer["headers"].get("Link", ""))
        return answer


def every_page(fetch_page: Callable[[str], tuple[list, str | None]], url: str) -> list:
    """Everything of a paged list, ``fetch_page`` answering a page's items and the next page's address. A list that
    comes back to a page it gave, or never ends, is an error rather than a loop."""
    items: list = []
    seen: set[str] = set()
    next_url: str | None = url
    while next_url:
        if next_url in seen or len(seen) >= MAX_PAGES:
            raise LtiException(f"The LMS's list at {url} does not end (page {next_url}).")
        seen.add(next_url)
        page, next_url = fetch_page(next_url)
        items.extend(page)
    return items


def service_connector(registration: Registration) -> ServiceConnector:
    return ServiceConnector(as_lti_registration(registration))


class DatabaseToolConf(ToolConfAbstract):
    """Every issuer may have several client ids (one Canvas, several developer keys), so lookups take both."""

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss, *args, **kwargs):
        raise NotImplementedError("registrations are found by issuer and client id")

    def find_deployment(self, iss, deployment_id):
        raise NotImplementedError("deployments are found by issuer, client id and deployment id")

    def find_registration_by_params(self, iss, client_id, *args, **kwargs):
        registration = Registration.objects.filter(issuer=iss, client_id=client_id).first()
        return as_lti_registration(registration) if registration else None

    def find_deployment_by_params(self, iss, deployment_id, client_id, *args, **kwargs):
        found = Deployment.objects.filter(
            registration__issuer=iss, registration__client_id=client_id, deployment_id=deployment_id
        ).exists()
        return LtiDeployment().set_deployment_id(deployment_id) if found else None
