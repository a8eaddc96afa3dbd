"""Lab 3's entry: the "Yoda test loglikelihood" is read from the output of the notebook's last cell, never typed,
shown beside the platform's number for the same adapter, and an entry without it is incomplete."""

import nbformat
import pytest
from django.urls import reverse
from django.utils import timezone

from labs.entries import services
from labs.entries.models import EntryKit
from labs.models import Evaluation
from tests.factories import make_music_lab
from tests.labs.entries.conftest import code, graded, notebook_bytes, upload

pytestmark = pytest.mark.django_db


def stream(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


@pytest.fixture
def llm_lab(course):
    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    EntryKit.objects.create(lab=lab, parts=["notebook"])
    return lab


def enter(lab, member, *, computed: float, notebook: bytes):
    submission = graded(lab, member)
    Evaluation.objects.filter(submission=submission).update(
        metrics={"public": {"test_loglikelihood": computed}},
        details={"test_loglikelihood": {"printed": f"{computed:.2f}", "device": "cuda", "dtype": "bfloat16"}},
    )
    now = timezone.now()
    services.choose_submission(lab=lab, member=member, submission_id=submission.pk, at=now)
    item = services.attach_file(lab=lab, member=member, part="notebook", upload=upload("lab3.ipynb", notebook), at=now)
    return item.entry, item


def test_the_number_is_read_from_the_last_cells_output_and_shown_beside_the_platforms(
    course, llm_lab, student, ta, login
):
    notebook = notebook_bytes(
        code("print('Yoda test loglikelihood: 9.99')", [stream("Yoda test loglikelihood: 9.99\n")]),  # an earlier try
        code("train()"),
        code("evaluate()", [stream("step 3\nYoda test loglikelihood: 2.57\n")]),
    )
    entry, item = enter(llm_lab, student, computed=2.55, notebook=notebook)
    assert (item.last_cell, item.reported_loglikelihood) == (3, 2.57)
    assert services.completeness(entry, services.kit_for(llm_lab)).complete
    page = login(ta).get(reverse("labs:staff_entry", args=[course.slug, llm_lab.slug, entry.pk])).content.decode()
    assert "(cell 3): <strong>2.57</strong>" in page and "<strong>2.55</strong> (cuda, bfloat16)" in page
    assert "more than 0.05" not in page


def test_a_number_far_from_the_platforms_is_flagged_to_the_judges(course, llm_lab, student, ta, login):
    notebook = notebook_bytes(code("evaluate()", [stream("Yoda test loglikelihood: 1.20\n")]))
    entry, _ = enter(llm_lab, student, computed=2.55, notebook=notebook)
    page = login(ta).get(reverse("labs:staff_entry", args=[course.slug, llm_lab.slug, entry.pk])).content.decode()
    assert "differ by 1.35, more than 0.05" in page


def test_an_entry_whose_last_cell_prints_no_number_is_incomplete(llm_lab, student):
    notebook = notebook_bytes(
        code("evaluate()", [stream("Yoda test loglikelihood: 2.57\n")]),
        code("print('done')", [stream("done\n")]),  # the last cell is not the one that printed it
    )
    entry, item = enter(llm_lab, student, computed=2.55, notebook=notebook)
    assert item.last_cell == 2 and item.reported_loglikelihood is None
    missing = services.completeness(entry, services.kit_for(llm_lab)).missing
    assert missing == ["the output of the notebook's last cell (its Yoda test loglikelihood)"]
