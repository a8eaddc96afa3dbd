"""The token API: accepted uploads are stored and queued; every bad input is refused and changes nothing."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from labs.models import Evaluation, Submission
from tests.canary import assert_no_canary, plant_canaries, record_child_environments
from tests.factories import artifact_files, make_music_lab, save_lstm, token_for, zip_bytes

URL = "/api/labs/{}/submissions"


@pytest.fixture
def lab(course):
    return make_music_lab(course)


@pytest.fixture
def artifact(tmp_path):
    return save_lstm(tmp_path / "artifact")


@pytest.fixture
def api(client, student):
    key = token_for(student)

    def post(lab, files, **extra):
        return client.post(URL.format(lab.slug), files, HTTP_AUTHORIZATION=f"Bearer {key}", **extra)

    post.key = key
    return post


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "artifacts"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_nothing_kept(before):
    assert Submission.objects.count() == 0
    assert Evaluation.objects.count() == 0
    assert stored_files() == before


def test_valid_artifact_is_accepted_stored_and_queued(api, lab, artifact, student, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(lab, artifact_files(artifact))
    assert response.status_code == 201, response.content
    body = response.json()
    submission = Submission.objects.get(pk=body["id"])
    assert submission.member == student
    assert body["status"] == "queued"
    assert sorted(f["name"] for f in submission.files) == ["config.json", "model.safetensors"]
    assert submission.artifact_summary["hidden_size"] == 16
    evaluation = submission.evaluations.get()
    assert evaluation.status == "queued"
    assert evaluation.sent_at is not None  # the task went to the broker after commit
    assert response["Location"] == f"/api/submissions/{submission.pk}"


def test_arrival_stamp_is_taken_before_the_body_is_read(api, lab, artifact):
    before = timezone.now()
    body = api(lab, artifact_files(artifact)).json()
    assert before <= Submission.objects.get(pk=body["id"]).received_at <= timezone.now()


def test_zip_holding_exactly_the_files_is_accepted(api, lab, artifact):
    data = zip_bytes({p.name: p.read_bytes() for p in artifact.iterdir()})
    response = api(lab, {"artifact": SimpleUploadedFile("artifact.zip", data)})
    assert response.status_code == 201, response.content
    zipped = Submission.objects.get()
    assert zipped.sha256 == response.json()["sha256"]


def test_the_zip_is_unpacked_by_a_child_that_sees_none_of_the_web_processes_secrets(
    api, lab, artifact, tmp_path, monkeypatch
):
    canaries = plant_canaries(monkeypatch)
    started = record_child_environments(monkeypatch, tmp_path / "children")
    data = zip_bytes({p.name: p.read_bytes() for p in artifact.iterdir()})
    response = api(lab, {"artifact": SimpleUploadedFile("artifact.zip", data)})
    assert response.status_code == 201, response.content
    (environment,) = started()  # the unzip child, the only one this upload starts
    assert_no_canary(environment, canaries)


def test_identity_is_the_same_for_files_and_zip(client, course, student, student2, lab, artifact):
    first = client.post(
        URL.format(lab.slug), artifact_files(artifact), HTTP_AUTHORIZATION=f"Bearer {token_for(student)}"
    )
    data = zip_bytes({p.name: p.read_bytes() for p in artifact.iterdir()})
    second = client.post(
        URL.format(lab.slug),
        {"artifact": SimpleUploadedFile("a.zip", data)},
        HTTP_AUTHORIZATION=f"Bearer {token_for(student2)}",
    )
    assert first.json()["sha256"] == second.json()["sha256"]


def test_same_artifact_twice_is_reported_not_graded_again(api, lab, artifact):
    first = api(lab, artifact_files(artifact)).json()
    response = api(lab, artifact_files(artifact))
    assert response.status_code == 409
    assert f"identical to your submission #{first['number']}" in response.json()["error"]["message"]
    assert Submission.objects.count() == 1


def test_empty_upload_is_refused(api, lab):
    before = stored_files()
    response = api(lab, {})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty"
    assert_nothing_kept(before)


def test_missing_file_is_named(api, lab, artifact):
    before = stored_files()
    response = api(
        lab,
        {"model.safetensors": SimpleUploadedFile("model.safetensors", (artifact / "model.safetensors").read_bytes())},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Missing config.json")
    assert_nothing_kept(before)


def test_pickle_under_the_safetensors_name_is_refused_at_upload(api, lab, artifact):
    import pickle

    files = artifact_files(artifact)
    files["model.safetensors"] = SimpleUploadedFile("model.safetensors", pickle.dumps({"weights": [1, 2, 3]}))
    before = stored_files()
    response = api(lab, files)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "pickle_not_allowed"
    assert "save_file" in error["message"]
    assert_nothing_kept(before)


def test_wrong_vocabulary_is_refused_with_the_graders_message(api, lab, tmp_path):
    bad = save_lstm(tmp_path / "bad", config=lambda c: {**c, "vocab": c["vocab"][:-1] + "€"})
    response = api(lab, artifact_files(bad))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_vocab"
    assert Submission.objects.count() == 0


def test_hyperparameters_that_need_tens_of_gigabytes_are_refused(api, lab, artifact):
    import json

    files = artifact_files(artifact)
    config = json.loads((artifact / "config.json").read_text())
    files["config.json"] = SimpleUploadedFile("config.json", json.dumps({**config, "hidden_size": 100_000}).encode())
    response = api(lab, files)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "config_out_of_bounds"


def test_over_the_size_limit_is_refused(api, lab, artifact):
    lab.max_artifact_bytes = 10_000
    lab.save()
    before = stored_files()
    response = api(lab, artifact_files(artifact))
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    assert_nothing_kept(before)


def test_zip_with_a_path_that_leaves_the_folder_is_refused(api, lab, artifact):
    data = zip_bytes({"../model.safetensors": b"x", "config.json": b"{}"})
    response = api(lab, {"artifact": SimpleUploadedFile("a.zip", data)})
    assert response.status_code == 400
    assert "not a plain file name" in response.json()["error"]["message"]
    assert Submission.objects.count() == 0


def test_zip_bomb_is_refused(api, lab):
    data = zip_bytes({"model.safetensors": b"\0" * (20 * 1024 * 1024), "config.json": b"{}"})
    response = api(lab, {"artifact": SimpleUploadedFile("a.zip", data)})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "zip bomb" in message or "limit" in message


def test_file_name_with_a_right_to_left_mark_is_refused(api, lab, artifact):
    files = artifact_files(artifact)
    files["config\u202egnp.json"] = files.pop("config.json")
    response = api(lab, files)
    assert response.status_code == 400
    assert "direction-changing" in response.json()["error"]["message"]
    assert Submission.objects.count() == 0


def test_control_characters_in_the_uploaded_file_name_never_reach_storage(api, lab, artifact):
    files = artifact_files(artifact)
    files["config.json"] = SimpleUploadedFile("config\u202e\x07.json", (artifact / "config.json").read_bytes())
    assert api(lab, files).status_code == 201
    assert sorted(f["name"] for f in Submission.objects.get().files) == ["config.json", "model.safetensors"]


def test_after_the_deadline_the_message_gives_her_deadline_in_et(api, lab, artifact):
    lab.deadline.due_at = timezone.now() - timedelta(hours=1)
    lab.deadline.save()
    response = api(lab, artifact_files(artifact))
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert message.startswith("The deadline for Lab 1: Music Generation was ")
    assert " ET;" in message
    assert Submission.objects.count() == 0


def test_extension_lets_her_submit_after_the_course_deadline(api, lab, artifact, student, ta):
    from courses.services import grant_extension

    lab.deadline.due_at = timezone.now() - timedelta(hours=1)
    lab.deadline.save()
    grant_extension(
        deadline=lab.deadline, member=student, until=timezone.now() + timedelta(hours=2), reason="", actor=ta.user
    )
    assert api(lab, artifact_files(artifact)).status_code == 201


def test_over_the_daily_quota_is_refused(api, lab, tmp_path):
    lab.daily_quota = 2
    lab.max_in_flight = 10
    lab.save()
    for seed in range(2):
        assert api(lab, artifact_files(save_lstm(tmp_path / f"a{seed}", seed=seed))).status_code == 201
    response = api(lab, artifact_files(save_lstm(tmp_path / "a9", seed=9)))
    assert response.status_code == 429
    assert "today's 2 submissions" in response.json()["error"]["message"]
    assert Submission.objects.count() == 2


def test_platform_errors_do_not_count_against_the_quota(api, lab, tmp_path):
    lab.daily_quota = 1
    lab.save()
    assert api(lab, artifact_files(save_lstm(tmp_path / "a0", seed=0))).status_code == 201
    Evaluation.objects.update(status="error")
    assert api(lab, artifact_files(save_lstm(tmp_path / "a1", seed=1))).status_code == 201


def test_too_many_evaluations_in_flight_are_refused(api, lab, tmp_path):
    lab.max_in_flight = 1
    lab.save()
    assert api(lab, artifact_files(save_lstm(tmp_path / "a0", seed=0))).status_code == 201
    response = api(lab, artifact_files(save_lstm(tmp_path / "a1", seed=1)))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "in_flight"


def test_a_lab_of_another_course_is_not_found(client, lab, outsider, artifact):
    response = client.post(
        URL.format(lab.slug), artifact_files(artifact), HTTP_AUTHORIZATION=f"Bearer {token_for(outsider)}"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_such_lab"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer cpt_not-a-real-token", "Basic dXNlcjpwYXNz"])
def test_missing_or_wrong_token_is_refused(client, lab, artifact, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post(URL.format(lab.slug), artifact_files(artifact), **extra)
    assert response.status_code == 401
    assert Submission.objects.count() == 0


def test_revoked_token_is_refused(client, lab, artifact, student):
    from labs.models import ApiToken

    key = token_for(student)
    ApiToken.objects.update(revoked_at=timezone.now())
    response = client.post(URL.format(lab.slug), artifact_files(artifact), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401


def test_expired_token_is_refused(client, lab, artifact, student):
    from labs.models import ApiToken

    key = token_for(student)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert (
        client.post(URL.format(lab.slug), artifact_files(artifact), HTTP_AUTHORIZATION=f"Bearer {key}").status_code
        == 401
    )


def test_tokens_are_stored_hashed(student):
    from labs.models import ApiToken

    key = token_for(student)
    stored = ApiToken.objects.get()
    assert key not in (stored.key_hash, stored.hint)
    assert stored.key_hash == ApiToken.hash_key(key)


def test_a_token_reads_only_her_own_submissions(client, api, lab, artifact, student2):
    mine = api(lab, artifact_files(artifact)).json()["id"]
    other_key = token_for(student2)
    response = client.get(f"/api/submissions/{mine}", HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert response.status_code == 404
    listing = client.get(URL.format(lab.slug), HTTP_AUTHORIZATION=f"Bearer {other_key}").json()
    assert listing == {"submissions": []}
    own = client.get(f"/api/submissions/{mine}", HTTP_AUTHORIZATION=f"Bearer {api.key}").json()
    assert own["id"] == mine and "private_score" not in own["evaluation"]


def test_openapi_document_describes_the_api(client):
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/api/labs/{lab_slug}/submissions", "/api/submissions/{pk}"}


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/submissions/k%0A", "/api/labs/%C3%A0h/submissions"])
def test_unknown_api_addresses_answer_json_not_an_html_page(client, path):
    response = client.post(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_a_wrong_method_is_a_json_405(client, student, lab):
    response = client.delete(URL.format(lab.slug), HTTP_AUTHORIZATION=f"Bearer {token_for(student)}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_lab_with_no_base_model_registered_answers_503_and_keeps_nothing(api, course, tmp_path):
    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    files = {
        "adapter_config.json": SimpleUploadedFile("adapter_config.json", b'{"peft_type": "LORA"}'),
        "adapter_model.safetensors": SimpleUploadedFile("adapter_model.safetensors", b"\x08" + b"\0" * 7 + b"{}"),
    }
    before = stored_files()
    response = api(lab, files)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "lab_unavailable"
    assert_nothing_kept(before)
