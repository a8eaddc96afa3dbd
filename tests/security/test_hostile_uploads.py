"""Hostile artifacts at upload: every one is refused with a 400 that names the problem, and nothing is kept."""

import json
import struct
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from grader.labs import music
from grader.safetensors_io import MAX_HEADER_BYTES
from labs.models import Evaluation, Submission
from tests.factories import save_lstm, zip_bytes
from tests.security.conftest import REPO, pickle_payload

VOCAB = music.COURSE_VOCAB


def safetensors_bytes(header: dict, data: bytes = b"", *, declared: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw + data


def good_config(**changes) -> bytes:
    cfg = {"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "vocab": VOCAB, **changes}
    return json.dumps(cfg).encode()


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, bytes]:
    folder = save_lstm(tmp_path_factory.mktemp("valid") / "artifact")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def files(**members: bytes) -> dict:
    return {
        name.replace("__", "."): SimpleUploadedFile(name.replace("__", "."), data) for name, data in members.items()
    }


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "artifacts"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def refused(api, lab, data, *, code: str, words: list[str], status: int = 400):
    before = stored_files()
    response = api(lab, data)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error["message"]
    assert Submission.objects.count() == 0 and Evaluation.objects.count() == 0
    assert stored_files() == before
    return error["message"]


# ------------------------------------------------------------------------------------------------- pickles


def test_the_pickle_payload_is_real_when_unpickled_elsewhere(tmp_path):
    """Proof that the payload used below would create its marker if anything ever unpickled it."""
    probe = tmp_path / "probe-marker"
    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", code], input=pickle_payload(probe), check=True, cwd=tmp_path, timeout=30)
    assert probe.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_pickle_named_model_safetensors_is_refused_and_never_unpickled(api, music_lab, valid, marker, protocol):
    payload = pickle_payload(marker, protocol)
    message = refused(
        api,
        music_lab,
        files(model__safetensors=payload, config__json=valid["config.json"]),
        code="pickle_not_allowed" if protocol >= 2 else "not_safetensors",
        words=["model.safetensors"],
    )
    if protocol >= 2:
        assert "pickle" in message and "save_file" in message
    assert not marker.exists()


def test_a_torch_save_file_named_model_safetensors_is_refused(api, music_lab, valid, marker):
    # torch.save writes a zip archive holding a pickle; build the same shape without torch.save.
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_payload(marker))
    refused(
        api,
        music_lab,
        files(model__safetensors=buffer.getvalue(), config__json=valid["config.json"]),
        code="pickle_not_allowed",
        words=["torch.save"],
    )
    assert not marker.exists()


def test_a_pickle_named_config_json_is_refused(api, music_lab, valid, marker):
    refused(
        api,
        music_lab,
        files(model__safetensors=valid["model.safetensors"], config__json=pickle_payload(marker, 0)),
        code="bad_config",
        words=["config.json", "not valid JSON"],
    )
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pt", "model.pkl", "pytorch_model.bin", "model.safetensors.pkl"])
def test_a_pickle_under_any_other_name_is_refused_as_an_unexpected_file(api, music_lab, valid, marker, name):
    data = {
        "config.json": SimpleUploadedFile("config.json", valid["config.json"]),
        "weights": SimpleUploadedFile(name, pickle_payload(marker)),
    }
    refused(api, music_lab, data, code="wrong_files", words=[repr(name), "model.safetensors"])
    assert not marker.exists()


def test_a_pickle_inside_a_zip_is_refused(api, music_lab, valid, marker):
    archive = zip_bytes({"model.safetensors": pickle_payload(marker), "config.json": valid["config.json"]})
    refused(
        api, music_lab, {"artifact": SimpleUploadedFile("a.zip", archive)}, code="pickle_not_allowed", words=["pickle"]
    )
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- safetensors


@pytest.mark.parametrize(
    ("declared", "code", "words"),
    [
        (MAX_HEADER_BYTES + 1, "not_safetensors", ["does not start with a safetensors header", "save_file"]),
        (2**64 - 1, "not_safetensors", ["does not start with a safetensors header", "save_file"]),
        (MAX_HEADER_BYTES - 8, "truncated_file", ["truncated"]),
    ],
)
def test_a_safetensors_header_length_at_or_past_the_limit_is_refused(api, music_lab, valid, declared, code, words):
    data = safetensors_bytes(
        {"fc.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, declared=declared
    )
    refused(api, music_lab, files(model__safetensors=data, config__json=valid["config.json"]), code=code, words=words)


def test_a_2_mib_header_is_refused_by_its_length_before_the_web_parses_it(api, music_lab, valid):
    # 2 MiB of invalid JSON: had the parser run, the message would say the header is not JSON.
    raw = b"{" + b'"t": ' * (2 * 1024 * 1024 // 5)
    data = struct.pack("<Q", len(raw)) + raw
    message = refused(
        api,
        music_lab,
        files(model__safetensors=data, config__json=valid["config.json"]),
        code="not_safetensors",
        words=[
            "model.safetensors is not a safetensors file of this lab's model",
            f"header would be {len(raw)} bytes",
            "limit of 1 MiB (1048576 bytes)",
            "save_file",
        ],
    )
    assert "JSON" not in message


@pytest.mark.parametrize(
    ("count", "code", "words"),
    [
        (100, "too_many_tensors", ["100 tensors", "at most 64"]),
        # Counted before parsing: more JSON values than 64 tensors can need.
        (1_000, "not_safetensors", ["about 7000 entries", "more than 64 tensors"]),
        # About 6 MB of header: refused by its length, never read.
        (100_000, "not_safetensors", ["limit of 1 MiB"]),
    ],
)
def test_a_header_of_many_tiny_tensors_is_refused(api, music_lab, valid, count, code, words):
    header = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(count)}
    data = safetensors_bytes(header, b"\0" * count)
    refused(api, music_lab, files(model__safetensors=data, config__json=valid["config.json"]), code=code, words=words)


def test_a_header_of_a_million_empty_objects_is_refused_before_it_is_parsed(api, music_lab, valid):
    # Under the length limit, but parsed it would cost about 25 MB of memory: 80 bytes per 3 bytes of text. It is
    # left unclosed: had the parser run, the message would say the header is not JSON.
    raw = b'{"t":[' + b"{}," * ((MAX_HEADER_BYTES - 8) // 3)
    data = struct.pack("<Q", len(raw)) + raw
    message = refused(
        api,
        music_lab,
        files(model__safetensors=data, config__json=valid["config.json"]),
        code="not_safetensors",
        words=["not a safetensors file of this lab's model", "more than 64 tensors"],
    )
    assert "JSON" not in message


def test_a_deeply_nested_safetensors_header_is_refused_not_a_crash(api, music_lab, valid):
    raw = b"[" * 50_000 + b"]" * 50_000
    data = struct.pack("<Q", len(raw)) + raw
    refused(
        api,
        music_lab,
        files(model__safetensors=data, config__json=valid["config.json"]),
        code="not_safetensors",
        words=["model.safetensors"],
    )


@pytest.mark.parametrize(
    ("offsets", "code", "words"),
    [
        ([[0, 4], [2, 6]], "not_safetensors", ["overlaps another tensor"]),
        ([[0, 4], [4, 8]], "truncated_file", ["runs past the end"]),  # the file holds only 4 data bytes
        ([[0, 4], [2**63, 2**63 + 4]], "not_safetensors", ["leaves a gap before it"]),
    ],
)
def test_overlapping_or_out_of_file_offsets_are_refused(api, music_lab, valid, offsets, code, words):
    header = {
        "a": {"dtype": "F32", "shape": [1], "data_offsets": offsets[0]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": offsets[1]},
    }
    data = safetensors_bytes(header, b"\0" * (6 if offsets[1][0] == 2 else 4))
    refused(api, music_lab, files(model__safetensors=data, config__json=valid["config.json"]), code=code, words=words)


@pytest.mark.parametrize(("dtype", "shown"), [("I64", "has dtype I64"), ("F64", "has dtype F64")])
def test_a_dtype_the_lab_does_not_allow_is_refused_naming_the_tensor(api, music_lab, tmp_path, dtype, shown):
    import torch

    def retype(state):
        state["fc.bias"] = state["fc.bias"].to(getattr(torch, {"I64": "int64", "F64": "float64"}[dtype]))

    folder = save_lstm(tmp_path / "a", mutate=retype)
    data = {p.name: SimpleUploadedFile(p.name, p.read_bytes()) for p in folder.iterdir()}
    refused(api, music_lab, data, code="wrong_tensors", words=["'fc.bias'", shown])


def test_an_unknown_dtype_is_refused(api, music_lab, valid):
    data = safetensors_bytes({"fc.bias": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16)
    refused(
        api,
        music_lab,
        files(model__safetensors=data, config__json=valid["config.json"]),
        code="not_safetensors",
        words=["unknown dtype 'F128'"],
    )


# ------------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize(
    ("config", "code", "words"),
    [
        (good_config(hidden_size=10**12), "config_out_of_bounds", ["'hidden_size' is 1000000000000", "8 to 2048"]),
        (
            good_config(embedding_dim=1024, hidden_size=2048, num_layers=3),
            "config_out_of_bounds",
            ["parameters", "40,000,000"],
        ),
        (good_config(hidden_size="16"), "bad_config", ["'hidden_size' must be a whole number"]),
        (good_config(hidden_size=16.0), "bad_config", ["'hidden_size' must be a whole number"]),
        (good_config(num_layers=True), "bad_config", ["'num_layers' must be a whole number"]),
        (good_config(vocab=["a", "b"]), "bad_config", ["'vocab' must be a string"]),
        (
            good_config(trust_remote_code=True, auto_map="evil.Model"),
            "bad_config",
            ["unknown keys", "'auto_map'", "'trust_remote_code'"],
        ),
        (b'{"hidden_size": 16, "hidden_size": 4096}', "bad_config", ["appears twice"]),
        (b'{"hidden_size": NaN}', "bad_config", ["NaN is not allowed"]),
        (b"[" * 30_000 + b"]" * 30_000, "bad_config", ["config.json"]),
        (b" " * 70_000 + b"{}", "bad_config", ["at most 65536 bytes"]),
    ],
    ids=[
        "enormous",
        "memory-bomb",
        "string",
        "float",
        "bool",
        "vocab-list",
        "extra-keys",
        "duplicate-key",
        "nan",
        "nested",
        "oversized",
    ],
)
def test_a_hostile_config_is_refused_with_what_to_change(api, music_lab, valid, config, code, words):
    refused(
        api,
        music_lab,
        files(model__safetensors=valid["model.safetensors"], config__json=config),
        code=code,
        words=words,
    )


# --------------------------------------------------------------------------------------------------- zips


def raw_zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([("/etc/model.safetensors", b"x"), ("config.json", b"{}")], ["'/etc/model.safetensors'", "top level"]),
        ([("../model.safetensors", b"x"), ("config.json", b"{}")], ["'../model.safetensors'"]),
        ([("a/../../model.safetensors", b"x"), ("config.json", b"{}")], ["not a plain file name"]),
        ([(symlink("model.safetensors", "/etc/passwd"), b"/etc/passwd"), ("config.json", b"{}")], ["symbolic link"]),
        ([("model.safetensors", b"x"), ("model.safetensors", b"y"), ("config.json", b"{}")], ["twice"]),
        (
            [("model.safetensors", b"x"), ("config.json", b"{}"), ("result.json", b'{"score": 0}')],
            ["unexpected file 'result.json'"],
        ),
        ([("model.safetensors", b"x"), ("config.json\u202egnp", b"{}")], ["unexpected file"]),
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "symlink", "duplicate", "result-json", "rtl-name"],
)
def test_a_hostile_zip_is_refused_naming_the_member(api, music_lab, entries, words, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        data = raw_zip(entries)
    refused(
        api,
        music_lab,
        {"artifact": SimpleUploadedFile("artifact.zip", data)},
        code="bad_zip",
        words=["The .zip was refused", *words],
    )
    assert not (tmp_path.parent / "model.safetensors").exists()


def test_a_decompression_bomb_is_stopped_before_it_fills_the_disk(api, music_lab, valid):
    bomb = raw_zip([("model.safetensors", b"\0" * (15 * 1024 * 1024)), ("config.json", valid["config.json"])])
    assert len(bomb) < 100_000
    refused(api, music_lab, {"artifact": SimpleUploadedFile("artifact.zip", bomb)}, code="bad_zip", words=["zip bomb"])


def test_a_file_that_only_claims_to_be_a_zip_is_refused(api, music_lab):
    refused(
        api,
        music_lab,
        {"artifact": SimpleUploadedFile("artifact.zip", b"PK\x03\x04 not really")},
        code="bad_zip",
        words=["could not be read"],
    )


# ------------------------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    "name",
    ["model\u202egnp.safetensors", "model.safetensors\x1b[31m", "model.safetensors\u200f", "model.safetensors\x07"],
)
def test_a_file_name_with_control_or_direction_characters_is_refused(api, music_lab, valid, name):
    data = {
        "config.json": SimpleUploadedFile("config.json", valid["config.json"]),
        name: SimpleUploadedFile(name, valid["model.safetensors"]),
    }
    refused(api, music_lab, data, code="bad_upload", words=["control or direction-changing characters"])


def test_a_result_json_sent_with_the_artifact_is_refused(api, music_lab, valid):
    fake = json.dumps({"schema": 1, "status": "ok", "metrics": {"public": {"bpc": 0.0}}}).encode()
    refused(
        api,
        music_lab,
        files(model__safetensors=valid["model.safetensors"], config__json=valid["config.json"], result__json=fake),
        code="wrong_files",
        words=["'result.json'"],
    )


# ---------------------------------------------------------------------------------------------- vision: ONNX


def onnx_bytes(tmp_path: Path, **kwargs) -> bytes:
    from tests.grader.test_vision_onnx import save, tiny_graph

    return (save(tiny_graph(**kwargs), tmp_path / "onnx") / "model.onnx").read_bytes()


def test_an_onnx_file_is_refused_where_the_course_did_not_enable_it(api, vision_lab, tmp_path):
    vision_lab.evaluator_options = {}
    vision_lab.save()
    data = {"model.onnx": SimpleUploadedFile("model.onnx", onnx_bytes(tmp_path))}
    refused(api, vision_lab, data, code="wrong_files", words=["'model.onnx'", "model.safetensors"])


def test_an_onnx_graph_in_a_custom_domain_is_refused_at_upload_by_the_checker(api, vision_lab, tmp_path):
    data = {"model.onnx": SimpleUploadedFile("model.onnx", onnx_bytes(tmp_path, domain="com.example.evil"))}
    refused(api, vision_lab, data, code="onnx_custom_domain", words=["com.example.evil"])


def test_an_onnx_file_with_a_config_beside_it_is_not_one_of_the_accepted_sets(api, vision_lab, tmp_path):
    data = {
        "model.onnx": SimpleUploadedFile("model.onnx", onnx_bytes(tmp_path)),
        "config.json": SimpleUploadedFile("config.json", b'{"architecture": "standard", "n_filters": 4}'),
    }
    refused(api, vision_lab, data, code="wrong_files", words=["model.onnx", "model.safetensors"])


def test_a_clean_onnx_graph_is_accepted_where_the_course_enabled_it(api, vision_lab, tmp_path):
    response = api(vision_lab, {"model.onnx": SimpleUploadedFile("model.onnx", onnx_bytes(tmp_path))})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"


def test_onnx_external_data_pointing_outside_is_refused_without_reading_it(tmp_path):
    import onnx

    from grader.errors import Rejected
    from grader.labs.vision import Lab
    from tests.grader.test_vision_onnx import tiny_graph

    model = tiny_graph()
    folder = tmp_path / "ext"
    folder.mkdir()
    weights = model.graph.initializer[0]
    weights.data_location = onnx.TensorProto.EXTERNAL
    del weights.external_data[:]
    for key, value in {"location": "/etc/passwd", "offset": "0", "length": "12"}.items():
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    weights.ClearField("raw_data")
    weights.ClearField("float_data")
    onnx.save_model(model, str(folder / "model.onnx"))
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == "onnx_external_data"
    assert "'w'" in info.value.message


def test_onnx_with_a_custom_operator_domain_is_refused_by_the_checker(tmp_path):
    from grader.errors import Rejected
    from grader.labs.vision import Lab
    from tests.grader.test_vision_onnx import save, tiny_graph

    with pytest.raises(Rejected) as info:
        Lab().check(save(tiny_graph(domain="ai.onnx.contrib"), tmp_path / "custom"))
    assert info.value.code == "onnx_custom_domain"
    assert "ai.onnx.contrib" in info.value.message


def test_vision_weights_with_a_wrong_dtype_for_batch_counts_are_refused(api, vision_lab, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from grader.labs.vision import expected_tensors

    tensors = {}
    for name, (_dtypes, shape) in expected_tensors(4, 1).items():
        tensors[name] = np.zeros(shape, dtype=np.float32)
    tensors["0.bn.num_batches_tracked"] = np.zeros((), dtype=np.float32)  # must be int64
    save_file(tensors, str(tmp_path / "model.safetensors"))
    data = {
        "model.safetensors": SimpleUploadedFile("model.safetensors", (tmp_path / "model.safetensors").read_bytes()),
        "config.json": SimpleUploadedFile("config.json", b'{"architecture": "standard", "n_filters": 4}'),
    }
    refused(api, vision_lab, data, code="wrong_tensors", words=["'0.bn.num_batches_tracked'", "I64"])


# ----------------------------------------------------------------------------------------------- llm: LoRA


def lora_files(tmp_path: Path, *, base_name: str, hidden: int, layers: int = 2) -> dict:
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path / "adapter"
    folder.mkdir()
    tensors = {}
    for i in range(layers):
        prefix = f"base_model.model.model.layers.{i}.self_attn.q_proj"
        tensors[f"{prefix}.lora_A.weight"] = np.zeros((4, hidden), dtype=np.float32)
        tensors[f"{prefix}.lora_B.weight"] = np.zeros((hidden, 4), dtype=np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj"],
        "bias": "none",
    }
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return {p.name: SimpleUploadedFile(p.name, p.read_bytes()) for p in folder.iterdir()}


def test_a_lora_adapter_for_another_base_model_is_refused_naming_both(api, llm_lab, tmp_path):
    refused(
        api,
        llm_lab,
        lora_files(tmp_path, base_name="meta-llama/Llama-3.2-1B", hidden=2048),
        code="wrong_base_model",
        words=["meta-llama/Llama-3.2-1B", "google/gemma-2-2b-it"],
    )


def test_a_lora_adapter_with_the_right_name_but_another_models_shapes_is_refused(api, llm_lab, tmp_path):
    adapter = lora_files(tmp_path, base_name="google/gemma-2-2b-it", hidden=64, layers=26)
    refused(api, llm_lab, adapter, code="wrong_tensors", words=["q_proj.lora_A.weight", "2304"])


# ------------------------------------------------------------------------------------ lying content types


@pytest.mark.parametrize("claimed", ["application/json", "image/png", "text/html"])
def test_a_valid_weights_file_is_judged_by_its_content_not_its_claimed_type(api, music_lab, valid, claimed):
    data = {
        "model.safetensors": SimpleUploadedFile("model.safetensors", valid["model.safetensors"], claimed),
        "config.json": SimpleUploadedFile("config.json", valid["config.json"], "image/png"),
    }
    response = api(music_lab, data)
    assert response.status_code == 201, response.content
    assert Submission.objects.get().artifact_summary["hidden_size"] == 16


def test_a_png_claiming_to_be_octet_stream_weights_is_refused(api, music_lab, valid):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    data = {
        "model.safetensors": SimpleUploadedFile("model.safetensors", png, "application/octet-stream"),
        "config.json": SimpleUploadedFile("config.json", valid["config.json"], "application/json"),
    }
    refused(api, music_lab, data, code="not_safetensors", words=["model.safetensors"])


def test_the_repository_code_is_unchanged_by_the_uploads(api, music_lab, valid, marker):
    from tests.security.conftest import snapshot

    before = snapshot(REPO / "grader", REPO / "labs")
    api(music_lab, files(model__safetensors=pickle_payload(marker), config__json=valid["config.json"]))
    api(
        music_lab,
        {"artifact": SimpleUploadedFile("a.zip", raw_zip([("../../labs/x.py", b"boom"), ("config.json", b"{}")]))},
    )
    assert snapshot(REPO / "grader", REPO / "labs") == before
    assert not marker.exists()
