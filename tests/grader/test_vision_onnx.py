"""Student-defined ONNX models for the vision lab: refused unless enabled, checked in a subprocess, scored."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from grader.dataset import load_manifest
from grader.errors import Rejected
from grader.labs.vision import Lab
from grader.labs.vision.onnx import check_in_subprocess
from grader.registry import EvaluationContext
from tests.canary import assert_no_canary, plant_canaries, record_child_environments


def tiny_graph(*, channels=3, size=64, out_width=1, domain="", external=False):
    """Global average pool -> flatten -> linear: a valid (if weak) face scorer on [N, C, size, size]."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", channels, size, size])
    logit = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", out_width])
    weight = numpy_helper.from_array(np.full((channels, out_width), 1.0, dtype=np.float32), "w")
    bias = numpy_helper.from_array(np.array([-1.0] * out_width, dtype=np.float32), "b")
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logit"])
        if not domain
        else helper.make_node("FancyGemm", ["flat", "w", "b"], ["logit"], domain=domain),
    ]
    graph = helper.make_graph(nodes, "face", [image], [logit], initializer=[weight, bias])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def save(model, folder, external=False):
    folder.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(
            model,
            str(folder / "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(folder / "model.onnx"))
    return folder


def refused(folder):
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    return info.value


def test_a_valid_onnx_graph_passes_the_subprocess_check(tmp_path):
    summary = Lab().check(save(tiny_graph(), tmp_path / "ok"))
    assert summary["format"] == "onnx"
    assert summary["nodes"] == 3


@pytest.mark.parametrize(("kwargs", "shown"), [({"channels": 1}, "[N, 1, 64, 64]"), ({"size": 32}, "[N, 3, 32, 32]")])
def test_an_onnx_input_of_the_wrong_channels_or_size_is_refused(tmp_path, kwargs, shown):
    error = refused(save(tiny_graph(**kwargs), tmp_path / "bad"))
    assert error.code == "onnx_wrong_input"
    assert "[N, 3, 64, 64]" in error.message and shown.replace("N", "'N'") in error.message


def test_an_onnx_graph_with_two_outputs_per_image_is_refused(tmp_path):
    error = refused(save(tiny_graph(out_width=2), tmp_path / "two"))
    assert error.code == "onnx_wrong_output"


def test_onnx_with_external_data_is_refused(tmp_path):
    error = refused(save(tiny_graph(), tmp_path / "ext", external=True))
    assert error.code == "onnx_external_data"
    assert "'w'" in error.message


def test_onnx_with_a_custom_operator_domain_is_refused(tmp_path):
    error = refused(save(tiny_graph(domain="com.example.evil"), tmp_path / "custom"))
    assert error.code == "onnx_custom_domain"
    assert "com.example.evil" in error.message


def test_the_onnx_parser_starts_without_any_of_the_callers_secrets(tmp_path, monkeypatch):
    canaries = plant_canaries(monkeypatch)
    started = record_child_environments(monkeypatch, tmp_path / "children")
    summary = check_in_subprocess(save(tiny_graph(), tmp_path / "ok") / "model.onnx")
    assert summary["nodes"] == 3
    (environment,) = started()
    assert_no_canary(environment, canaries)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert refused(tmp_path / "junk").code in ("onnx_unreadable", "onnx_invalid")


def _small_dataset(tmp_path):
    from PIL import Image

    from grader.dataset import write_manifest

    rng = np.random.default_rng(0)
    items = []
    for i in range(40):
        label = int(i < 20)
        # faces are bright, non-faces dark: the tiny graph (mean brightness - 1/3) tells them apart
        pixels = rng.integers(150, 255, (64, 64, 3)) if label else rng.integers(0, 100, (64, 64, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"{i}.png")
        group = ("LF", "LM", "DF", "DM")[i % 4] if label else None
        items.append({"file": f"{i}.png", "label": label, "group": group, "source": f"s{i // 2}"})
    splits = {"public": {"items": items}, "private": {"items": items}}
    return write_manifest(tmp_path, name="t", lab="vision", demo_only=True, description="t", splits=splits)


def test_an_onnx_model_is_scored_only_when_the_option_allows_it_and_fgsm_is_not_available(tmp_path):
    (tmp_path / "data").mkdir()
    manifest = _small_dataset(tmp_path / "data")
    artifact = save(tiny_graph(), tmp_path / "sub")
    base = dict(
        artifact_dir=artifact, data_dir=tmp_path / "data", manifest=manifest, out_dir=tmp_path, device="cpu", seed=0
    )
    with pytest.raises(Rejected) as info:
        Lab().evaluate(EvaluationContext(**base))
    assert info.value.code == "onnx_not_enabled"
    result = Lab().evaluate(EvaluationContext(**base, options={"allow_onnx": "1"}))
    assert result.metrics["public"]["worst_group_tpr"] == 1.0
    assert result.metrics["public"]["fgsm_1"] is None and result.metrics["private"]["fgsm_8"] is None
    assert load_manifest(tmp_path / "data").hash == manifest.hash
