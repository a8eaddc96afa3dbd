"""The labs' metric declarations: every number an evaluation reports is declared, and a result outside them is named."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from grader.cli import main
from grader.errors import EXIT_OK
from grader.labs import llm as llm_lab
from grader.labs import vision
from grader.labs.vision import data as vision_data
from grader.labs.vision import metrics as vision_metrics
from grader.labs.vision import model as vision_model
from grader.registry import (
    EvaluationContext,
    LabEvaluator,
    MetricSpec,
    declaration_problems,
    get_lab,
    group_metric_spec,
    lab_names,
    metric_spec,
    out_of_range,
)
from grader.result import load_result
from tests.grader import test_llm_lab as llm_tests
from tests.grader import test_vision_onnx as onnx_tests

# The LLM lab's cached demo data and tiny base model (built once for its own tests).
llm_data = llm_tests.llm_data


def declared(lab: str) -> set[str]:
    return {spec.key for spec in type(get_lab(lab)).metrics}


def declared_columns(lab: str) -> set[str]:
    return {spec.key for spec in type(get_lab(lab)).group_metrics}


# ---- what real evaluations report ----------------------------------------------------------------------------


def test_a_music_evaluation_reports_exactly_the_declared_metrics_all_in_range(artifact, tiny_dataset, tmp_path):
    out = tmp_path / "out"
    args = ["evaluate", "--lab", "music", "--submission", str(artifact), "--data", str(tiny_dataset)]
    assert main([*args, "--out", str(out), "--option", "songs=2", "--option", "song_length=120"]) == EXIT_OK
    result = load_result(out / "result.json")  # what the worker reads back from the sandbox
    assert {split: set(table) for split, table in result["metrics"].items()} == {
        "public": declared("music"),
        "private": declared("music"),
    }
    assert out_of_range("music", result["metrics"], result["groups"]) == []


def _vision_dataset(tmp_path):
    (tmp_path / "data").mkdir()
    return onnx_tests._small_dataset(tmp_path / "data")


def _evaluate_vision(tmp_path, manifest, artifact, options=None):
    ctx = EvaluationContext(
        artifact_dir=artifact,
        data_dir=tmp_path / "data",
        manifest=manifest,
        out_dir=tmp_path / "out",
        device="cpu",
        seed=0,
        options=options or {},
    )
    return vision.Lab().evaluate(ctx)


def test_a_vision_audit_reports_exactly_the_declared_metrics_and_group_columns_all_in_range(tmp_path):
    manifest = _vision_dataset(tmp_path)
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in vision_model.make_standard_classifier(4).state_dict().items()}
    (tmp_path / "sub").mkdir()
    save_file(state, str(tmp_path / "sub" / "model.safetensors"))
    (tmp_path / "sub" / "config.json").write_text(json.dumps({"architecture": "standard", "n_filters": 4}))
    result = _evaluate_vision(tmp_path, manifest, tmp_path / "sub")
    for split in ("public", "private"):
        assert set(result.metrics[split]) == declared("vision")
        assert set(result.groups[split]) == set(vision.GROUPS)
        assert all(set(row) == declared_columns("vision") for row in result.groups[split].values())
    assert out_of_range("vision", result.metrics, result.groups) == []


def test_an_onnx_vision_audit_reports_declared_metrics_with_the_attacks_not_available(tmp_path):
    manifest = _vision_dataset(tmp_path)
    artifact = onnx_tests.save(onnx_tests.tiny_graph(), tmp_path / "sub")
    result = _evaluate_vision(tmp_path, manifest, artifact, {"allow_onnx": "1"})
    assert set(result.metrics["public"]) == declared("vision")
    assert result.metrics["public"]["fgsm_4"] is None
    assert out_of_range("vision", result.metrics, result.groups) == []


@pytest.mark.slow
def test_an_llm_evaluation_reports_exactly_the_declared_metrics_all_in_range(llm_data, tmp_path, monkeypatch):
    # Two training steps: which numbers come out does not depend on how well the adapter learned.
    monkeypatch.setattr(llm_lab, "REFERENCE_STEPS", 2)
    llm_lab.Lab().train_reference(llm_data, tmp_path / "adapter", variant="reference", seed=0)
    result = llm_tests.evaluate(tmp_path / "adapter", llm_data, tmp_path / "out")
    assert {split: set(table) for split, table in result.metrics.items()} == {
        "public": declared("llm"),
        "private": declared("llm"),
    }
    assert result.groups is None
    assert out_of_range("llm", result.metrics, result.groups) == []


def test_the_vision_declaration_names_the_groups_and_attacks_the_audit_code_uses():
    assert vision.GROUPS == vision_metrics.GROUPS == vision_data.GROUPS
    assert vision.FGSM_EPSILONS == vision_model.FGSM_EPSILONS


# ---- the checks on an untrusted result -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lab", "table"),
    [
        ("music", {"bpc": 0, "validity": 1.0, "novelty": None}),
        ("music", {"bpc": 6.375, "validity": 0.0, "novelty": 0.5}),
        ("vision", {"worst_group_tpr": 0.0, "gap": 1, "threshold": -1e6, "fgsm_8": None, "ece": 0.03}),
        ("llm", {"cross_entropy": 1234.5, "style_score": 10}),
        ("llm", {"cross_entropy": 0.0, "style_score": 0.0}),
    ],
)
def test_in_range_and_not_available_values_give_no_message(lab, table):
    assert out_of_range(lab, {"public": table, "private": table}) == []


def test_in_range_group_tables_give_no_message():
    row = {"tpr": 1.0, "tpr_ci_low": 0.0, "tpr_ci_high": 1.0, "mean_probability": 0.4, "accuracy_at_0.5": None}
    groups = {"public": {"LF": {**row, "count": 120.0}, "DM": row}, "private": {}}
    assert out_of_range("vision", {"public": {}}, groups) == []


@pytest.mark.parametrize(
    ("lab", "key", "value", "message"),
    [
        ("music", "bpc", -0.5, "public.bpc = -0.5 is outside the allowed range (0 or more)"),
        ("music", "validity", 1.01, "public.validity = 1.01 is outside the allowed range (0 to 1)"),
        ("vision", "worst_group_tpr", 2, "public.worst_group_tpr = 2 is outside the allowed range (0 to 1)"),
        ("vision", "ece", -1e-9, "public.ece = -1e-09 is outside the allowed range (0 to 1)"),
        ("llm", "style_score", 10.5, "public.style_score = 10.5 is outside the allowed range (0 to 10)"),
        ("llm", "cross_entropy", -3, "public.cross_entropy = -3 is outside the allowed range (0 or more)"),
    ],
)
def test_a_value_outside_its_range_gives_one_message(lab, key, value, message):
    assert out_of_range(lab, {"public": {key: value}}) == [message]


def test_a_group_column_outside_its_range_gives_one_message():
    groups = {"private": {"DF": {"tpr": 0.5, "count": -1}}}
    assert out_of_range("vision", {}, groups) == [
        "groups.private.DF.count = -1 is outside the allowed range (0 or more)"
    ]


def test_an_unknown_metric_gives_a_message_naming_it():
    metrics = {"public": {"bpc": 1.2, "bpc_bonus": 0.0}}
    assert out_of_range("music", metrics) == ["public: unknown metric 'bpc_bonus'"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), (10**400, "1000000000000000000000000000000000000")],
)
def test_a_non_finite_number_gives_a_message(value, shown):
    (problem,) = out_of_range("vision", {"public": {"threshold": value}})
    assert problem.startswith(f"public.threshold is {shown}")
    assert problem.endswith(", not a finite number")


@pytest.mark.parametrize(("value", "shown"), [("0.5", "'0.5'"), (True, "True"), (False, "False"), ([0.5], "[0.5]")])
def test_a_string_a_bool_or_a_list_is_not_a_number(value, shown):
    assert out_of_range("vision", {"private": {"gap": value}}) == [f"private.gap is {shown}, not a number"]


def test_each_problem_of_a_result_gets_its_own_message():
    metrics = {"public": {"bpc": math.nan, "validity": 3, "novelty": "high", "extra": 1}, "train": {"bpc": 1.0}}
    assert out_of_range("music", metrics) == [
        "metrics: unknown split 'train'",
        "public.bpc is nan, not a finite number",
        "public.validity = 3 is outside the allowed range (0 to 1)",
        "public.novelty is 'high', not a number",
        "public: unknown metric 'extra'",
    ]


def test_unknown_groups_columns_and_splits_of_the_group_tables_give_messages():
    groups = {"public": {"LF": {"tpr": 0.9, "tpr_boost": 1.0}, "XX": {"tpr": 0.1}}, "holdout": {}}
    assert out_of_range("vision", {}, groups) == [
        "groups: unknown split 'holdout'",
        "groups.public.LF: unknown column 'tpr_boost'",
        "groups.public: unknown group 'XX'",
    ]


def test_group_tables_from_a_lab_that_has_none_give_a_message():
    assert out_of_range("music", {}, {"public": {}}) == []
    assert out_of_range("llm", {}, {"public": {"LF": {"tpr": 1.0}}}) == [
        "the llm lab reports no per-group tables, but the result has {'public': {'LF': {'tpr': 1.0}}}"
    ]


def test_a_result_of_the_wrong_shape_gives_messages_instead_of_failing():
    assert out_of_range("music", ["bpc", 1.0]) == ["the metrics are ['bpc', 1.0], not a table by split"]
    assert out_of_range("music", {"public": 1.0}) == ["public is 1.0, not a table of metrics"]
    assert out_of_range("vision", {}, {"public": ["LF"], "private": {"LM": None}}) == [
        "groups.public is ['LF'], not a table by group",
        "groups.private.LM is None, not a table of columns",
    ]


def test_a_long_untrusted_value_is_cut_short_in_its_message():
    (problem,) = out_of_range("music", {"public": {"x" * 500: 1.0}})
    assert len(problem) < 100 and problem.endswith("...")


# ---- the declarations themselves -------------------------------------------------------------------------------


def test_metric_spec_gives_the_label_explanation_direction_and_range():
    spec = metric_spec("vision", "worst_group_tpr")
    assert (spec.label, spec.direction, spec.low, spec.high) == ("Worst-group detection rate at 5% FPR", "max", 0, 1)
    assert spec.explanation
    assert group_metric_spec("vision", "count").low == 0 and group_metric_spec("vision", "count").high is None
    with pytest.raises(KeyError, match="reports no metric 'accuracy'"):
        metric_spec("music", "accuracy")
    with pytest.raises(KeyError, match="reports no per-group column 'tpr'"):
        group_metric_spec("music", "tpr")


@pytest.mark.parametrize("lab", lab_names())
def test_each_lab_ranks_by_metrics_it_declares(lab):
    cls = type(get_lab(lab))
    assert declaration_problems(cls) == []
    assert metric_spec(lab, cls.primary_metric).direction == cls.primary_direction
    assert metric_spec(lab, cls.tiebreak_metric).direction == cls.tiebreak_direction


def _lab_class(**attrs):
    base = {
        "metrics": (MetricSpec("loss", "Loss", "How wrong.", "min", low=0), MetricSpec("acc", "Acc", "Right.", "max")),
        "primary_metric": "loss",
        "primary_direction": "min",
        "tiebreak_metric": "acc",
        "tiebreak_direction": "max",
        "queue": "grading-test",
        "leaderboard_columns": ("loss", "acc"),
    }
    return type("ToyLab", (LabEvaluator,), {**base, **attrs})


def test_a_consistent_lab_class_is_accepted():
    assert _lab_class().primary_metric == "loss"


@pytest.mark.parametrize(
    ("attrs", "problem"),
    [
        ({"primary_metric": "losss"}, "the primary metric 'losss' is not among the declared metrics"),
        ({"tiebreak_direction": "min"}, "the tiebreak direction is 'min' but metric 'acc' is declared 'max'"),
        ({"metrics": ()}, "the primary metric 'loss' is not among the declared metrics"),
        ({"metrics": None}, "'metrics' must be a tuple of MetricSpec"),
        (
            {"metrics": (MetricSpec("loss", "L", "E.", "min"),) * 2 + (MetricSpec("acc", "A", "E.", "max"),)},
            "metrics declares loss more than once",
        ),
        ({"group_metrics": (MetricSpec("tpr", "T", "E.", "max"),)}, "group_metrics are declared but no group_names"),
    ],
)
def test_a_lab_class_that_disagrees_with_itself_fails_when_defined(attrs, problem):
    with pytest.raises(TypeError, match="lab class ToyLab disagrees with itself") as info:
        _lab_class(**attrs)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"low": 1.0, "high": 0.0},
        {"direction": "up"},
        {"label": ""},
    ],
)
def test_a_malformed_metric_spec_is_refused(kwargs):
    args = {"key": "acc", "label": "Accuracy", "explanation": "Share right.", "direction": "max", **kwargs}
    with pytest.raises(ValueError):
        MetricSpec(**args)
