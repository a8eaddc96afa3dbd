"""The optional LLM judge of Lab 3, after the sandbox returned, against an OpenAI-compatible stand-in on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labs.models import Evaluation, Submission
from tests.factories import make_music_lab
from worker.judging import LlmJudgeUnavailable, score_style_with_llm


class StandInJudge(BaseHTTPRequestHandler):
    """A stand-in for a course's OpenAI-compatible judge endpoint (none can be reached from here): it scores 9 when
    the quoted answer puts its verb last Yoda-style ('... it is.'), else 2."""

    fail = False

    def do_POST(self):  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.fail:
            self.send_response(503)
            self.end_headers()
            return
        text = body["messages"][-1]["content"]
        score = 9 if "it is." in text else 2
        reply = {"choices": [{"message": {"role": "assistant", "content": json.dumps({"score": score})}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture
def evaluation(course, student, judge_url):
    lab = make_music_lab(
        course,
        slug="lab3",
        kind="llm",
        primary_metric="cross_entropy",
        tiebreak_metric="style_score",
        evaluator_options={"judge_url": judge_url, "judge_model": "judge", "judge_retries": "1"},
    )
    submission = Submission.objects.create(
        lab=lab, member=student, storage_prefix="x", files=[], sha256="s", size=1, received_at=lab.deadline.due_at
    )
    return Evaluation.objects.create(
        submission=submission,
        status="succeeded",
        metrics={"public": {"style_score": 1.0}, "private": {}},
        judge_inputs={
            "public": ["Strong with the force, it is.", "The force is strong."],
            "private": ["Hidden answer, it is."],
            "fluency_gates": {"public": [1.0, 1.0], "private": [1.0]},
        },
    )


def test_judge_scores_replace_the_offline_style_score_and_the_tiebreak(evaluation):
    assert score_style_with_llm(evaluation.pk) == "judged"
    evaluation.refresh_from_db()
    assert evaluation.metrics["public"]["style_score"] == 5.5
    assert evaluation.metrics["private"]["style_score"] == 9.0
    assert evaluation.public_tiebreak == 5.5
    assert evaluation.details["style_judge"] == "llm"


def test_a_judge_outage_is_retried_later_and_changes_nothing(evaluation):
    StandInJudge.fail = True
    try:
        with pytest.raises(LlmJudgeUnavailable):
            score_style_with_llm(evaluation.pk)
    finally:
        StandInJudge.fail = False
    evaluation.refresh_from_db()
    assert evaluation.metrics["public"]["style_score"] == 1.0 and evaluation.status == "succeeded"


def test_the_judges_scores_carry_the_evaluations_fluency_gates(evaluation):
    evaluation.judge_inputs["fluency_gates"] = {"public": [0.5, 1.0], "private": [0.0]}
    evaluation.save(update_fields=["judge_inputs"])
    assert score_style_with_llm(evaluation.pk) == "judged"
    evaluation.refresh_from_db()
    assert evaluation.details["style_scores"]["public"] == [4.5, 2.0]
    assert evaluation.metrics["private"]["style_score"] == 0.0


def test_the_boxs_gates_are_kept_only_when_they_are_one_number_in_0_1_per_answer(tmp_path):
    from worker.verdicts import read_judge_inputs

    answers = {"public": ["a", "b"], "private": ["c"]}
    (tmp_path / "judge_answers.json").write_text(
        json.dumps({**answers, "fluency_gates": {"public": [0.25, 1.0], "private": [0.5, 0.5]}})
    )
    assert read_judge_inputs(tmp_path) == {**answers, "fluency_gates": {"public": [0.25, 1.0]}}
    (tmp_path / "judge_answers.json").write_text(json.dumps({**answers, "fluency_gates": {"public": [9, "x"]}}))
    assert read_judge_inputs(tmp_path) == answers
