"""Private storage in an S3-compatible bucket, configured from the environment as in production."""

import hashlib
import os

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

pytestmark = pytest.mark.django_db


def open_files_under(folder) -> list[int]:
    """This process's open descriptors on files in ``folder``, unnamed temporary files (O_TMPFILE) included."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{folder}/"):
            found.append(int(fd))
    return found


def test_a_stored_file_lands_in_the_private_bucket_under_the_key_the_storage_returns(s3_server, private_bucket):
    key = default_storage.save("submissions/1/config.json", ContentFile(b'{"h": 64}'))
    again = default_storage.save("submissions/1/config.json", ContentFile(b'{"h": 32}'))
    # Never overwritten: a second file under the same name gets a key of its own.
    assert again != key
    assert s3_server.objects(private_bucket) == {key: b'{"h": 64}', again: b'{"h": 32}'}
    assert s3_server.written_by("staff", private_bucket) == {key, again}
    acl = s3_server.client().get_object_acl(Bucket=private_bucket, Key=key)
    assert [grant["Permission"] for grant in acl["Grants"]] == ["FULL_CONTROL"]  # the owner's alone


def test_a_large_object_read_from_the_bucket_spills_to_disk_instead_of_staying_in_memory(
    s3_server, private_bucket, tmp_path, settings
):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    size = 8 * 1024 * 1024
    data = os.urandom(size)
    s3_server.client().put_object(Bucket=private_bucket, Key="datasets/big.tar.gz", Body=data)
    digest = hashlib.sha256()
    with default_storage.open("datasets/big.tar.gz", "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        # The download's buffer while it is read: a file on disk of its whole size (kept in memory, there is none).
        spilled = [os.fstat(fd).st_size for fd in open_files_under(tmp_path)]
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert spilled == [size]
    assert open_files_under(tmp_path) == []  # and gone once closed
