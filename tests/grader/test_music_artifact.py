"""What Lab 1 accepts and refuses as an artifact, and the message the student gets each time."""

import json
import pickle
import struct
import zipfile

import pytest
import torch

from grader.errors import Rejected
from grader.labs.music import COURSE_VOCAB, Lab
from grader.safetensors_io import MAX_HEADER_BYTES
from tests.grader.conftest import save_lstm

LAB = Lab()


def rejected(directory, *, deep=True) -> Rejected:
    with pytest.raises(Rejected) as info:
        LAB.check(directory, deep=deep)
    return info.value


def test_the_notebooks_state_dict_saved_with_safetensors_is_accepted(artifact):
    summary = LAB.check(artifact, deep=True)
    assert summary == {
        "embedding_dim": 8,
        "hidden_size": 16,
        "num_layers": 1,
        "parameters": 83 * 8 + 4 * 16 * (8 + 16 + 2) + 83 * 16 + 83,
        "dtypes": ["F32"],
    }


def test_half_precision_weights_are_accepted(tmp_path):
    def to_half(state):
        for k in state:
            state[k] = state[k].half()

    folder = save_lstm(tmp_path / "a", layers=2, mutate=to_half)
    assert LAB.check(folder, deep=True)["dtypes"] == ["F16"]


def test_a_file_that_is_not_safetensors_is_refused(artifact):
    (artifact / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00hello world, not json")
    err = rejected(artifact, deep=False)
    assert err.code == "not_safetensors"
    assert "save_file(model.state_dict()" in err.message


def test_a_truncated_file_is_refused(artifact):
    path = artifact / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    err = rejected(artifact, deep=False)
    assert err.code == "truncated_file"
    assert "truncated" in err.message


def test_a_header_longer_than_the_limit_is_refused_by_its_length_before_it_is_parsed(artifact):
    # 2 MiB of invalid JSON: had the parser run, the refusal would say the header is not JSON.
    raw = b"{" + b"x" * (2 * 1024 * 1024 - 1)
    (artifact / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    err = rejected(artifact, deep=False)
    assert err.code == "not_safetensors"
    assert err.message.startswith(
        "model.safetensors is not a safetensors file of this lab's model: its header would be 2097152 bytes, "
        "over the limit of 1 MiB (1048576 bytes)"
    )
    assert "JSON" not in err.message


def test_a_header_of_900_kb_is_still_accepted(artifact):
    from safetensors.torch import load_file, save_file

    path = artifact / "model.safetensors"
    save_file(load_file(path), str(path), metadata={"notes": "x" * 900_000})
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert 900_000 < header_len < MAX_HEADER_BYTES
    assert LAB.check(artifact, deep=True)["dtypes"] == ["F32"]


def test_a_pickle_renamed_to_safetensors_is_refused_without_being_loaded(artifact):
    (artifact / "model.safetensors").write_bytes(pickle.dumps({"fc.bias": [0.0] * 83}))
    err = rejected(artifact, deep=False)
    assert err.code == "pickle_not_allowed"
    assert "save_file(model.state_dict()" in err.message


def test_a_torch_save_archive_is_refused(artifact):
    path = artifact / "model.safetensors"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    assert rejected(artifact, deep=False).code == "pickle_not_allowed"


def test_wrong_tensor_names_are_named_in_the_message(tmp_path):
    def rename(state):
        state["linear.weight"] = state.pop("fc.weight")

    err = rejected(save_lstm(tmp_path / "a", mutate=rename))
    assert err.code == "wrong_tensors"
    assert "missing tensor 'fc.weight'" in err.message
    assert "unexpected tensor 'linear.weight'" in err.message


def test_shapes_that_disagree_with_the_config_are_refused(tmp_path):
    folder = save_lstm(tmp_path / "a", h=16, config=lambda c: {**c, "hidden_size": 32})
    err = rejected(folder, deep=False)
    assert err.code == "wrong_tensors"
    assert "tensor 'fc.weight' has shape [83, 16], expected [83, 32]" in err.message


def test_a_vocabulary_that_differs_from_the_course_is_refused_with_the_difference(tmp_path):
    folder = save_lstm(tmp_path / "a", config=lambda c: {**c, "vocab": COURSE_VOCAB.replace("|", "")})
    err = rejected(folder, deep=False)
    assert err.code == "wrong_vocab"
    assert "it lacks '|'" in err.message
    assert "83 characters" in err.message


def test_an_unsorted_vocabulary_is_refused(tmp_path):
    folder = save_lstm(tmp_path / "a", config=lambda c: {**c, "vocab": COURSE_VOCAB[::-1]})
    err = rejected(folder, deep=False)
    assert err.code == "wrong_vocab"
    assert "not sorted" in err.message


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_layers", 4, "The config's 'num_layers' is 4; this lab allows 1 to 3."),
        ("embedding_dim", 4, "The config's 'embedding_dim' is 4; this lab allows 8 to 1024."),
        ("hidden_size", 1_000_000, "The config's 'hidden_size' is 1000000; this lab allows 8 to 2048."),
    ],
)
def test_hyperparameters_out_of_bounds_are_refused(tmp_path, key, value, message):
    folder = save_lstm(tmp_path / "a", config=lambda c: {**c, key: value})
    err = rejected(folder, deep=False)
    assert (err.code, err.message) == ("config_out_of_bounds", message)


def test_a_model_needing_gigabytes_is_refused_from_the_config_before_the_weights_are_read(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    cfg = {"embedding_dim": 1024, "hidden_size": 2048, "num_layers": 3, "vocab": COURSE_VOCAB}
    (folder / "config.json").write_text(json.dumps(cfg))
    # A header claiming a huge tensor with no data: reading it would fail differently.
    header = json.dumps({"fc.bias": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    err = rejected(folder, deep=False)
    assert err.code == "config_out_of_bounds"
    assert "at most 40,000,000" in err.message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_the_deep_check(tmp_path, bad):
    def poison(state):
        state["lstm.weight_hh_l0"][3, 5] = bad

    folder = save_lstm(tmp_path / "a", mutate=poison)
    assert LAB.check(folder, deep=False)["hidden_size"] == 16
    err = rejected(folder, deep=True)
    assert err.code == "non_finite_weights"
    assert "'lstm.weight_hh_l0'" in err.message


def test_a_missing_config_is_refused(artifact):
    (artifact / "config.json").unlink()
    err = rejected(artifact)
    assert (err.code, err.message) == ("missing_file", "config.json is missing; upload it next to the weights.")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "config.json is not valid JSON"),
        ("[1, 2]", "config.json must hold a JSON object"),
        ('{"embedding_dim": NaN}', "config.json is not valid JSON"),
        ('{"embedding_dim": "8", "hidden_size": 16, "num_layers": 1}', "must be a whole number"),
        ('{"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "lr": 0.1}', "unknown keys 'lr'"),
        ('{"embedding_dim": 8, "hidden_size": 16, "num_layers": 1}', "lacks 'vocab'"),
    ],
)
def test_a_malformed_config_is_refused(artifact, text, message):
    (artifact / "config.json").write_text(text)
    err = rejected(artifact)
    assert err.code == "bad_config"
    assert message in err.message


def test_the_lab_model_loads_the_checked_weights_exactly(artifact):
    from safetensors.torch import load_file

    model = LAB.load_model(artifact)
    saved = load_file(str(artifact / "model.safetensors"))
    assert set(model.state_dict()) == set(saved)
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
