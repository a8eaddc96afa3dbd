"""What each lab's submission page and leaderboard show from a stored result."""

from django.urls import reverse
from django.utils import timezone

from labs.models import Evaluation, Submission
from tests.factories import make_music_lab, token_for

GROUPS = {
    g: {
        "tpr": t,
        "tpr_ci_low": t - 0.1,
        "tpr_ci_high": min(1.0, t + 0.1),
        "mean_probability": 0.7,
        "accuracy_at_0.5": 0.8,
        "count": 40,
    }
    for g, t in {"LF": 0.95, "LM": 0.9, "DF": 0.55, "DM": 0.6}.items()
}


def vision_lab(course):
    return make_music_lab(
        course,
        slug="lab2",
        kind="vision",
        primary_metric="worst_group_tpr",
        primary_direction="max",
        tiebreak_metric="balanced_accuracy",
        tiebreak_direction="max",
    )


def stored(lab, member, *, metrics, groups=None, details=None, samples=None, label=""):
    submission = Submission.objects.create(
        lab=lab,
        member=member,
        storage_prefix=f"p/{member.pk}/{label}",
        files=[],
        sha256=f"{member.pk}{label}",
        size=1,
        received_at=timezone.now(),
        baseline_label=label,
    )
    Evaluation.objects.create(
        submission=submission,
        status="succeeded",
        metrics=metrics,
        groups=groups,
        details=details or {},
        samples=samples or [],
        finished_at=timezone.now(),
        public_score=metrics["public"].get(lab.primary_metric),
    )
    return submission


def test_vision_page_shows_the_audit_chart_beside_the_reference_and_names_the_worst_group(login, course, student, ta):
    lab = vision_lab(course)
    metrics = {
        "public": {
            "worst_group_tpr": 0.55,
            "gap": 0.4,
            "balanced_accuracy": 0.8,
            "fgsm_1": 0.7,
            "fgsm_2": 0.6,
            "fgsm_4": 0.5,
            "fgsm_8": 0.3,
            "ece": 0.05,
        }
    }
    stored(lab, ta, metrics=metrics, groups={"public": GROUPS}, label="Reference standard classifier")
    mine = stored(lab, student, metrics=metrics, groups={"public": GROUPS}, details={"worst_group": {"public": "DF"}})
    body = login(student).get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    assert "<svg" in body and 'aria-label="Detection rate per group at 5% false-positive rate"' in body
    assert body.count("reference LF") == 1  # the reference's bars stand beside hers
    assert "darker-skinned women (DF)" in body and "0.400" in body
    assert "FGSM accuracy" in body and "ECE" in body


def test_vision_leaderboard_shows_the_audit_columns_and_not_available_as_such(login, course, student):
    lab = vision_lab(course)
    stored(
        lab,
        student,
        metrics={"public": {"worst_group_tpr": 0.5, "balanced_accuracy": 0.7, "gap": 0.3, "fgsm_4": None, "ece": 0.1}},
    )
    body = login(student).get(reverse("labs:leaderboard", args=[course.slug, lab.slug])).content.decode()
    from grader.registry import metric_spec

    # The column headings are the labels the grader's lab class declares, in its order.
    for key in ("worst_group_tpr", "balanced_accuracy", "gap", "fgsm_4", "ece"):
        assert metric_spec("vision", key).label in body
    assert 'title="not available">n/a' in body


def test_llm_page_shows_answers_beside_the_base_model_and_the_score_distribution(login, course, student):
    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    samples = [
        {
            "kind": "text",
            "split": "public",
            "title": "Prompt 1",
            "prompt": "Tell me about <b>the force</b>",
            "text": "Strong, <script>x()</script> it is.",
            "base_text": "The force is strong.",
            "style_score": 8.5,
            "base_style_score": 1.0,
        }
    ]
    mine = stored(
        lab,
        student,
        metrics={"public": {"cross_entropy": 2.1, "style_score": 8.5}},
        samples=samples,
        details={"style_scores": {"public": [8.5]}, "base_style_score": {"public": 1.0}},
    )
    body = login(student).get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    assert "Strong, &lt;script&gt;x()&lt;/script&gt; it is." in body and "<script>x()" not in body
    assert "The force is strong." in body and "Per prompt: 8.5" in body


def test_llm_page_names_the_base_the_layers_adapted_and_the_notebooks_number(login, course, student):
    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    details = {
        "base_model": {"name": "LiquidAI/<i>LFM2</i>-1.2B", "model_type": "lfm2", "config_sha256": "ab" * 32},
        "adapter": {
            "target_modules": ["k_proj", "q_proj", "v_proj"],
            "adapted_modules": 18,
            "r": 8,
            "parameters": 1234,
        },
        "test_loglikelihood": {"printed": "2.57", "device": "cpu", "dtype": "float32"},
    }
    mine = stored(lab, student, metrics={"public": {"cross_entropy": 2.1, "style_score": 8.5}}, details=details)
    body = login(student).get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    assert "LiquidAI/&lt;i&gt;LFM2&lt;/i&gt;-1.2B" in body and "<i>LFM2" not in body
    assert "<code>k_proj</code>, <code>q_proj</code>, <code>v_proj</code> in 18 places, rank 8" in body
    assert "<strong>2.57</strong>: what your notebook" in body


def test_llm_page_shows_the_fluency_parts_that_gated_each_answers_style(login, course, student):
    from grader.labs.llm.fluency import measure

    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    run = measure("Ach, the Brrrrrrrrrrrrrrrrrrrrrrrrrrrrr", "Tell me about the Force.")
    fluent = measure("Strong with the Force, you are. Patience, you must learn.", "Tell me about the Force.")
    samples = [
        {
            "kind": "text",
            "split": "public",
            "title": "Prompt 1",
            "prompt": "Tell me about the Force.",
            "text": "Ach, the Brrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
            "style_score": 0.0,
            "classifier_score": 9.5,
            "fluency": run.to_json(),
            "base_text": "Strong with the Force, you are. Patience, you must learn.",
            "base_style_score": 7.2,
            "base_classifier_score": 7.2,
            "base_fluency": fluent.to_json(),
        }
    ]
    mine = stored(lab, student, metrics={"public": {"cross_entropy": 2.1, "style_score": 0.0}}, samples=samples)
    body = login(student).get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    assert "Style classifier 9.5 × fluency gate 0.00: 3 words, dictionary words 0.33" in body
    assert "Style classifier 7.2 × fluency gate 1.00: 10 words, dictionary words 1.00" in body
    assert body.count("copied from the prompt") == 2


def test_music_page_lists_the_generated_songs_for_abcjs(login, course, student):
    lab = make_music_lab(course)
    song = "X:1\nT:Reel <i>of</i> tests\nM:4/4\nK:D\n|:d2fd a2fd:|"
    mine = stored(
        lab,
        student,
        metrics={"public": {"bpc": 2.0}},
        samples=[{"kind": "abc", "split": "public", "title": "Reel <i>of</i> tests", "text": song}],
    )
    body = login(student).get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    assert 'class="abc-source" data-target="song-1"' in body
    assert "Reel &lt;i&gt;of&lt;/i&gt; tests" in body
    assert "vendor/abcjs/dist/abcjs-basic-min.js" in body


def test_an_audit_without_a_gap_says_so_rather_than_naming_a_worst_group(login, course, student):
    lab = vision_lab(course)
    even = {g: {**row, "tpr": 1.0} for g, row in GROUPS.items()}
    mine = stored(
        lab,
        student,
        metrics={"public": {"worst_group_tpr": 1.0, "gap": 0.0}},
        groups={"public": even},
        details={"worst_group": {"public": "LF"}},
    )
    body = login(student).get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    assert "Every group is detected at the same rate" in body
    assert "The worst-served group is" not in body


def test_every_metric_is_shown_by_its_declared_label_and_explanation_on_the_pages_and_in_the_api(
    login, course, student
):
    from django.test import Client
    from django.utils.html import escape

    from grader.registry import get_lab, metric_spec

    lab = vision_lab(course)
    public = {"worst_group_tpr": 0.55, "balanced_accuracy": 0.8, "threshold": -3.8168, "accuracy_at_0.5": 0.7}
    public |= {"fgsm_1": 0.7}
    mine = stored(lab, student, metrics={"public": public}, groups={"public": GROUPS})
    client = login(student)
    body = client.get(reverse("labs:submission", args=[course.slug, lab.slug, mine.pk])).content.decode()
    for key in public:
        spec = metric_spec("vision", key)
        assert f'<th scope="row">{escape(spec.label)}' in body, key
        assert f'<span class="muted">{escape(spec.explanation)}</span>' in body, key
        assert f'<th scope="row">{key}' not in body
    assert 'Worst-group detection rate at 5% FPR <span class="pill">primary, higher is better</span>' in body
    assert "-3.8168" in body
    # The per-group table's headings are the lab's declared group columns.
    for spec in type(get_lab("vision")).group_metrics:
        if spec.key not in ("tpr_ci_low", "tpr_ci_high"):
            assert f'<th scope="col" class="num">{escape(spec.label)}</th>' in body, spec.key

    lab_page = client.get(reverse("labs:lab", args=[course.slug, lab.slug])).content.decode()
    assert '<th scope="col" class="num">Worst-group detection rate at 5% FPR (public)</th>' in lab_page
    board = client.get(reverse("labs:leaderboard", args=[course.slug, lab.slug])).content.decode()
    assert (
        "Ranked by Worst-group detection rate at 5% FPR (higher is better), then Balanced accuracy at 5% FPR," in board
    )

    # The token API gives a notebook the same words.
    api = Client().get(f"/api/submissions/{mine.pk}", HTTP_AUTHORIZATION=f"Bearer {token_for(student)}")
    labels = api.json()["evaluation"]["metric_labels"]
    assert labels["threshold"] == {
        "label": "Decision threshold (logit)",
        "explanation": "The face logit from which an image counts as a face (at most 5% of non-faces reach it).",
        "direction": None,
    }
    assert sorted(labels) == sorted(public)
