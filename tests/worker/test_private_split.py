"""Nothing of a hidden private split reaches the student: a canary planted in it, graded for real, is nowhere she looks.

The canary goes into the private tunes themselves (their titles and id lines: the hidden text the grader reads),
the submission is made through the token API and graded in the real sandbox, and then every place the student can
read is searched: her pages, the leaderboard, the API's JSON, her result.json and the log tail of the run.
"""

import json
import secrets

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from grader.dataset import load_manifest, write_manifest
from grader.labs.music import COURSE_VOCAB, SPLIT_FILES, TRAIN_FILE
from labs.management.commands.register_dataset import register_dataset
from labs.models import Evaluation, Submission
from tests.factories import TINY_TUNES, artifact_files, make_music_lab, save_lstm, token_for

# The tiny Lab 3 dataset and base model of the grader's tests, built once and kept in the tests' cache.
from tests.grader.conftest import course_data_dir  # noqa: F401 - shared session fixtures
from tests.grader.test_llm_lab import llm_data  # noqa: F401
from worker import grading


def submit_through_api(client, lab, auth: dict, artifact) -> tuple[Submission, Evaluation]:
    """Her upload of ``artifact`` through the token API, accepted, with the evaluation it queued."""
    posted = client.post(reverse("api:submissions", args=[lab.slug]), artifact_files(artifact), **auth)
    assert posted.status_code == 201, posted.content
    submission = Submission.objects.get(pk=posted.json()["id"])
    return submission, submission.evaluations.get()


def planted_dataset(directory, canary: str):
    """The tiny music set, its private tunes marked with ``canary`` where the grader reads them."""
    from grader.labs import music

    music.write_dataset(TINY_TUNES, directory, seed=0, hidden={"public": 2, "private": 2}, name="tiny-tunes")
    private = directory / SPLIT_FILES["private"]
    text = private.read_text().replace("T:", f"T:{canary} ").replace("Z: id:", f"Z: id:{canary}-")
    private.write_text(text)
    manifest = load_manifest(directory, verify=False)
    splits = dict(manifest.splits)
    splits["private"] = {**splits["private"], "characters": len(text)}
    write_manifest(
        directory,
        name=manifest.name,
        lab=manifest.lab,
        demo_only=manifest.demo_only,
        description=manifest.description,
        splits=splits,
        meta=manifest.meta,
    )
    return directory


@pytest.fixture
def canary():
    # Made of the course vocabulary, so that the grader scores the planted tunes like any other.
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz0123456789" if c in COURSE_VOCAB]
    return "canary" + "".join(secrets.choice(letters) for _ in range(20))


def test_a_canary_in_the_private_split_is_nowhere_the_student_can_see(
    course, student, student2, canary, client, login, settings, tmp_path
):
    settings.WORKER_CACHE_DIR = tmp_path / "cache"
    data = planted_dataset(tmp_path / "hidden", canary)
    assert canary in (data / SPLIT_FILES["private"]).read_text()
    assert canary not in (data / SPLIT_FILES["public"]).read_text() + (data / TRAIN_FILE).read_text()
    lab = make_music_lab(course, dataset=register_dataset(data))
    key = token_for(student)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    submission, evaluation = submit_through_api(client, lab, auth, save_lstm(tmp_path / "a"))
    assert grading.grade(evaluation.pk) == "succeeded"
    evaluation.refresh_from_db()
    # The grader did read the planted tunes: the private split has its own score.
    assert evaluation.metrics["private"]["bpc"] > 0 and evaluation.private_score is not None

    seen = {"log tail": evaluation.log_tail}
    assert evaluation.log_tail.startswith("Graded in ")
    assert "Summary: " + json.dumps({"public": evaluation.metrics["public"], "status": "ok"}, sort_keys=True) in (
        evaluation.log_tail
    )

    api_list = client.get(reverse("api:submissions", args=[lab.slug]), **auth)
    api_detail = client.get(reverse("api:submission", args=[submission.pk]), **auth)
    assert api_detail.status_code == 200 and api_detail.json()["evaluation"]["log_tail"] == evaluation.log_tail
    seen["api list"] = api_list.content.decode()
    seen["api detail"] = api_detail.content.decode()

    browser = login(student)
    args = [course.slug, lab.slug]
    page = browser.get(reverse("labs:submission", args=[*args, submission.pk])).content.decode()
    assert "<summary>Log tail</summary>" in page and "Graded in " in page
    result_url = reverse("labs:result_file", args=[*args, submission.pk])
    assert f'href="{result_url}"' in page
    seen["submission page"] = page
    seen["lab page"] = browser.get(reverse("labs:lab", args=args)).content.decode()
    seen["her submissions"] = browser.get(reverse("labs:mine", args=args)).content.decode()
    board = reverse("labs:leaderboard", args=args)
    seen["leaderboard"] = browser.get(board).content.decode() + browser.get(board + "?split=private").content.decode()

    download = browser.get(result_url)
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    result = json.loads(download.content)
    assert result["metrics"] == {"public": evaluation.metrics["public"]} and result["split"] == "public"
    assert result["samples"] == evaluation.samples and result["log_tail"] == evaluation.log_tail
    assert '"private"' not in download.content.decode()
    seen["result.json"] = download.content.decode()

    for place, text in seen.items():
        assert canary not in text, f"the private split's canary reached her {place}"

    # Another student may not download it.
    assert login(student2).get(result_url).status_code == 404


def test_her_result_json_waits_for_a_successful_evaluation_and_is_hers_alone(
    course, student, student2, ta, login, tmp_path
):
    from tests.factories import submit_folder

    lab = make_music_lab(course)
    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a"))
    url = reverse("labs:result_file", args=[course.slug, lab.slug, submission.pk])
    assert login(student).get(url).status_code == 404  # still queued: nothing to download
    submission.evaluations.update(
        status="succeeded",
        metrics={"public": {"bpc": 2.0}, "private": {"bpc": 2.5}},
        details={"worst_group": {"public": "DM", "private": "LF"}},
        public_score=2.0,
        private_score=2.5,
    )
    body = login(student).get(url).json()
    assert body["metrics"] == {"public": {"bpc": 2.0}} and body["details"] == {"worst_group": {"public": "DM"}}
    assert login(ta).get(url).status_code == 200
    assert login(student2).get(url).status_code == 404
    client = login(student)
    client.logout()
    assert client.get(url).status_code == 302


# ------------------------------------------------------------------------------------------ Lab 3 (llm)


def planted_llm_dataset(source, directory, canary: str):
    """A copy of the tiny Yoda set whose hidden texts carry ``canary``: every private pair (prompt and answer),
    every private prompt the model answers, and the public split's hidden Yoda answers (scored, never shown)."""
    import shutil

    shutil.copytree(source, directory)
    manifest = load_manifest(directory, verify=True)

    def rewrite_pairs(relative: str, *, prompts: bool):
        path = directory / relative
        pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for pair in pairs:
            pair["answer"] = f"{canary} {pair['answer']}"
            if prompts:
                pair["prompt"] = pair["prompt"].replace("about ", f"about {canary} ", 1)
        path.write_text("".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs))

    rewrite_pairs(manifest.splits["private"]["pairs"], prompts=True)
    rewrite_pairs(manifest.splits["public"]["pairs"], prompts=False)
    prompts_file = directory / manifest.splits["private"]["prompts"]
    prompts = json.loads(prompts_file.read_text())
    prompts_file.write_text(json.dumps([f"{canary}: {p}" for p in prompts], indent=1))
    write_manifest(
        directory,
        name=manifest.name,
        lab=manifest.lab,
        demo_only=manifest.demo_only,
        description=manifest.description,
        splits=manifest.splits,
        meta=manifest.meta,
    )
    return directory


@pytest.mark.slow
def test_a_canary_in_lab_3s_hidden_texts_is_nowhere_the_student_can_see(
    course,
    student,
    student2,
    client,
    login,
    settings,
    tmp_path,
    llm_data,  # noqa: F811
):
    import shutil

    from grader.labs import llm as llm_lab
    from labs.basemodels import register_base_model
    from tests.grader.test_llm_checks import write_adapter

    canary = "canary" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(20))
    settings.WORKER_CACHE_DIR = tmp_path / "cache"
    settings.SANDBOX_PREWARM = False
    data = planted_llm_dataset(llm_data, tmp_path / "hidden" / "llm", canary)
    manifest = load_manifest(data, verify=True)
    public_prompts = json.loads(manifest.file(manifest.splits["public"]["prompts"]).read_text())
    assert canary in manifest.file(manifest.splits["private"]["prompts"]).read_text()
    assert canary not in "".join(public_prompts) + manifest.file(manifest.meta["train_file"]).read_text()
    base = shutil.copytree(llm_lab.tiny_base_dir(llm_data), tmp_path / "models" / "tiny-gemma-2")
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    lab = make_music_lab(
        course,
        slug="lab3",
        kind="llm",
        number=3,
        title="Large Language Models",
        dataset=register_dataset(data),
        primary_metric="cross_entropy",
        primary_direction="min",
        tiebreak_metric="style_score",
        tiebreak_direction="max",
        evaluator_options={},
        max_artifact_bytes=16 * 1024 * 1024,
        time_limit_s=600,
        memory_limit_mb=4096,
    )
    # Registered as staff register it: from the config.json the node's copy holds.
    register_base_model(
        lab=lab,
        actor=None,
        name="course/tiny-gemma-2",
        folder=str(base),
        config_bytes=(base / "config.json").read_bytes(),
    )
    key = token_for(student)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    submission, evaluation = submit_through_api(client, lab, auth, write_adapter(tmp_path / "adapter"))
    assert grading.grade(evaluation.pk) == "succeeded", evaluation.staff_log
    evaluation.refresh_from_db()
    # The grader read the planted texts: both splits are scored, and the model answered the planted prompts.
    assert evaluation.metrics["private"]["cross_entropy"] > 0 and evaluation.private_score is not None
    assert len(evaluation.judge_inputs["private"]) == len(
        json.loads(manifest.file("hidden/prompts_private.json").read_text())
    )
    # Her samples are the public prompts and her model's answers to them.
    assert [s["prompt"] for s in evaluation.samples] == public_prompts
    assert {s["split"] for s in evaluation.samples} == {"public"}

    browser = login(student)
    args = [course.slug, lab.slug]
    result_url = reverse("labs:result_file", args=[*args, submission.pk])

    def everything_she_sees() -> dict[str, str]:
        seen = {"log tail": evaluation.log_tail}
        seen["api list"] = client.get(reverse("api:submissions", args=[lab.slug]), **auth).content.decode()
        seen["api detail"] = client.get(reverse("api:submission", args=[submission.pk]), **auth).content.decode()
        page = browser.get(reverse("labs:submission", args=[*args, submission.pk])).content.decode()
        assert "Generated answers" in page and "<summary>Log tail</summary>" in page
        assert all(escape(prompt) in page for prompt in public_prompts), "her answers are shown with their prompts"
        seen["submission page"] = page
        seen["lab page"] = browser.get(reverse("labs:lab", args=args)).content.decode()
        seen["her submissions"] = browser.get(reverse("labs:mine", args=args)).content.decode()
        board = reverse("labs:leaderboard", args=args)
        seen["leaderboard"] = (
            browser.get(board).content.decode() + browser.get(board + "?split=private").content.decode()
        )
        download = browser.get(result_url)
        assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
        result = json.loads(download.content)
        assert [s["prompt"] for s in result["samples"]] == public_prompts and result["split"] == "public"
        assert result["samples"] == evaluation.samples and '"private"' not in download.content.decode()
        seen["result.json"] = download.content.decode()
        return seen

    for place, text in everything_she_sees().items():
        assert canary not in text, f"Lab 3's hidden texts reached her {place}"
    # Once the private scores are released she sees their numbers, and still none of their texts.
    lab.private_released_at = timezone.now()
    lab.save(update_fields=["private_released_at"])
    detail = client.get(reverse("api:submission", args=[submission.pk]), **auth).json()
    assert detail["evaluation"]["metrics"]["private"]["cross_entropy"] == evaluation.metrics["private"]["cross_entropy"]
    for place, text in everything_she_sees().items():
        assert canary not in text, f"Lab 3's hidden texts reached her {place} once private scores were released"
    assert login(student2).get(result_url).status_code == 404


# ------------------------------------------------------------------------------------ a failed run
# In place of the grader, a program that reads the hidden data in the box and says it every way it can: on stdout,
# in a traceback on stderr, and in its rejection's message, under one of the grader's own codes.
QUOTING_GRADER = """
import json, os, sys, traceback
print("ready", flush=True)
job = json.loads(sys.stdin.readline())
manifest = json.load(open(os.path.join(job["data"], "manifest.json")))
hidden = open(os.path.join(job["data"], manifest["splits"]["private"]["file"])).read()
tune = next(line for line in hidden.splitlines() if line.startswith("T:"))
print(hidden, flush=True)
try:
    raise ValueError(f"could not score {tune}")
except ValueError:
    traceback.print_exc()
print(json.dumps({"status": "rejected", "error": {"code": __CODE__, "message": tune}}), flush=True)
result = {
    "schema": 1, "lab": "music", "grader_version": "1.0.0",
    "dataset": {"name": manifest["name"], "hash": __HASH__},
    "device_class": "cpu", "seed": 0, "status": "rejected",
    "error": {"code": __CODE__, "message": f"{__PREFIX__}{tune}"},
    "metrics": {}, "primary": None, "tiebreak": None, "groups": None, "samples": [], "details": {},
    "artifact": {}, "timings": {"check_s": 0.01, "evaluate_s": None, "total_s": 0.02},
}
json.dump(result, open(os.path.join(job["out"], "result.json"), "w"))
sys.exit(3)
"""


@pytest.mark.parametrize(
    "code, prefix, shown",
    [
        # A check's code: its message would be shown, but it quotes a hidden tune.
        ("bad_config", "config.json is wrong near ", "The grader rejected your files (bad_config)"),
        # Raised while her model ran on the hidden data: the grader's fixed words, whatever the message said.
        ("non_finite_outputs", "", "are not finite"),
    ],
)
def test_a_failed_run_shows_her_nothing_the_grader_read_of_the_hidden_data(
    code, prefix, shown, course, student, canary, client, login, settings, tmp_path, monkeypatch
):
    from tests.security.test_hostile_boxes import hostile_grader
    from worker.sandbox.bubblewrap import BubblewrapSandbox

    settings.WORKER_CACHE_DIR = tmp_path / "cache"
    settings.SANDBOX_PREWARM = False
    settings.EVALUATION_MAX_ATTEMPTS = 1
    lab = make_music_lab(course, dataset=register_dataset(planted_dataset(tmp_path / "hidden", canary)))
    program = (
        QUOTING_GRADER.replace("__CODE__", repr(code))
        .replace("__HASH__", repr(lab.dataset.manifest_hash))
        .replace("__PREFIX__", repr(prefix))
    )
    box = BubblewrapSandbox(
        grader_dir=hostile_grader(tmp_path / "quoting", program),
        cgroup_parent=f"grader-sandbox-{canary[:20]}",
        staging_root="/run/grader-sandbox",
    )
    monkeypatch.setattr(grading, "_sandbox", box)
    key = token_for(student)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    submission, evaluation = submit_through_api(client, lab, auth, save_lstm(tmp_path / "a"))

    assert grading.grade(evaluation.pk) == "failed"
    evaluation.refresh_from_db()
    assert evaluation.error_code == code and shown in evaluation.error_message
    # The box did read the planted tunes and said so: the staff's log has every word of it.
    assert evaluation.staff_log.count(canary) >= 3
    assert evaluation.log_tail.startswith("Refused in ") and f"Reason: {code}" in evaluation.log_tail
    assert "Not shown: " in evaluation.log_tail

    seen = {"log tail": evaluation.log_tail, "message": evaluation.error_message}
    seen["api list"] = client.get(reverse("api:submissions", args=[lab.slug]), **auth).content.decode()
    detail = client.get(reverse("api:submission", args=[submission.pk]), **auth)
    assert detail.json()["evaluation"]["error"]["code"] == code
    seen["api detail"] = detail.content.decode()
    browser = login(student)
    args = [course.slug, lab.slug]
    page = browser.get(reverse("labs:submission", args=[*args, submission.pk])).content.decode()
    assert "<summary>Log tail</summary>" in page and shown in page
    seen["submission page"] = page
    seen["lab page"] = browser.get(reverse("labs:lab", args=args)).content.decode()
    seen["her submissions"] = browser.get(reverse("labs:mine", args=args)).content.decode()
    assert browser.get(reverse("labs:result_file", args=[*args, submission.pk])).status_code == 404
    from django.core import mail

    seen["mail"] = "\n".join(f"{m.subject}\n{m.body}" for m in mail.outbox)
    for place, text in seen.items():
        assert canary not in text, f"the hidden data the box read reached her {place}"
