"""How the demo uploads its artifacts: a staff baseline in-process, a student's through the token API as a notebook."""

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path


class FileUpload:
    """A file on disk shaped like an uploaded file, for the in-process intake of staff baselines."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.name
        self.size = path.stat().st_size

    def chunks(self):
        with self.path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk


def post_artifact(url: str, token: str, folder: Path, description: str) -> tuple[int, dict]:
    """A notebook's upload: the artifact's files as multipart fields, with the personal token."""
    boundary = uuid.uuid4().hex
    parts = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{path.name}"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="description"\r\n\r\n{description}\r\n'.encode()
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(  # noqa: S310 - the demo's own loopback server
        url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - the demo's own loopback server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
