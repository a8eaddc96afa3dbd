"""An S3-compatible server (moto's, on loopback) that records which access key read or wrote which object."""

import importlib.util
import os
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest

REGION = "us-east-1"


@dataclass(frozen=True)
class Access:
    method: str
    bucket: str
    key: str
    access_key: str


def access_key_of(environ: dict) -> str:
    """The access key id a request was signed with, from its header or (presigned) its query string."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in header:
        return header.split("Credential=", 1)[1].split("/", 1)[0]
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    return credential.split("/", 1)[0]


class S3Server:
    """moto's S3 in a thread of this process, reached over real HTTP by this process and by its children."""

    def __init__(self):
        # Imported here (as boto3 below): every test session loads these fixtures, few tests start the server.
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args, **kwargs):  # the access log below is what the tests read
                pass

        self.accesses: list[Access] = []
        self._lock = threading.Lock()
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", 0, self._record, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="s3-server")

    def _record(self, environ, start_response):
        # Path-style addressing (an IP endpoint): /bucket/key.
        bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
        with self._lock:
            self.accesses.append(Access(environ["REQUEST_METHOD"], bucket, key, access_key_of(environ)))
        return self._moto(environ, start_response)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> "S3Server":
        self._thread.start()
        return self

    def stop(self) -> None:
        from moto.backends import get_backend

        self._server.shutdown()
        self._thread.join(timeout=10)
        # moto keeps its buckets in this process's memory, not per server: the next test starts from none.
        get_backend("s3").reset()

    def client(self, access_key: str = "staff"):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=f"{access_key}-secret",
        )

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of the bucket with its bytes, as listed by the server."""
        s3 = self.client()
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]
        return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}

    def read_by(self, access_key: str, bucket: str) -> set[str]:
        """The object keys that the holder of ``access_key`` downloaded."""
        with self._lock:
            return {
                a.key
                for a in self.accesses
                if a.method == "GET" and a.bucket == bucket and a.key and a.access_key == access_key
            }

    def written_by(self, access_key: str, bucket: str) -> set[str]:
        with self._lock:
            return {
                a.key
                for a in self.accesses
                if a.method == "PUT" and a.bucket == bucket and a.key and a.access_key == access_key
            }


def storage_environment(server: S3Server, bucket: str, access_key: str) -> dict[str, str]:
    """The variables a web or worker process is configured with to keep private files in ``bucket``."""
    return {
        "PRIVATE_STORAGE_S3_BUCKET": bucket,
        "PRIVATE_STORAGE_S3_ENDPOINT_URL": server.url,
        "PRIVATE_STORAGE_S3_REGION": REGION,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": f"{access_key}-secret",
    }


def storages_from_environment(env: dict[str, str]) -> dict:
    """The STORAGES that config/settings.py builds from these variables, read by running the settings module."""
    spec = importlib.util.find_spec("config.settings")
    module = importlib.util.module_from_spec(spec)  # a fresh copy: the settings in use are left alone
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        spec.loader.exec_module(module)
        return module.STORAGES
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def private_bucket(s3_server, settings, monkeypatch):
    """A fresh bucket that this process's default storage uses, configured as the settings do from the environment;
    this process signs as ``staff`` (what a TA's management command on the web container would do)."""
    bucket = f"course-private-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    env = storage_environment(s3_server, bucket, "staff")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = storages_from_environment(env)
    return bucket
