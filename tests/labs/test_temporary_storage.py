"""Tests write only into temporary storage: an upload through the token API leaves the repository's var/ alone."""

from pathlib import Path

from django.conf import settings

from labs.models import Submission
from tests.factories import artifact_files, make_music_lab, save_lstm, token_for

REPOSITORY_VAR = Path(__file__).resolve().parents[2] / "var"


def listing(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")} if root.exists() else set()


def test_an_upload_through_the_token_api_is_stored_in_the_temporary_var_not_the_repositorys(
    client, course, student, tmp_path, django_capture_on_commit_callbacks
):
    lab = make_music_lab(course)
    artifact = save_lstm(tmp_path / "artifact")
    before = listing(REPOSITORY_VAR)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/labs/{lab.slug}/submissions",
            artifact_files(artifact),
            HTTP_AUTHORIZATION=f"Bearer {token_for(student)}",
        )
    assert response.status_code == 201, response.content
    submission = Submission.objects.get(pk=response.json()["id"])
    stored = Path(settings.MEDIA_ROOT) / submission.storage_prefix
    assert sorted(p.name for p in stored.iterdir()) == ["config.json", "model.safetensors"]
    assert not stored.resolve().is_relative_to(REPOSITORY_VAR.resolve())
    assert listing(REPOSITORY_VAR) - before == set()
