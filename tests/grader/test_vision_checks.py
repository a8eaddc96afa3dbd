"""What the vision lab accepts and refuses as an artifact, and the messages a student gets."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from grader.errors import Rejected
from grader.labs.vision import Lab
from grader.labs.vision.model import DBVAE, make_standard_classifier

REPO = Path(__file__).resolve().parents[2]


def write_artifact(folder: Path, state: dict, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def standard_artifact(folder: Path, n_filters: int = 4) -> Path:
    torch.manual_seed(0)
    model = make_standard_classifier(n_filters)
    return write_artifact(folder, model.state_dict(), {"architecture": "standard", "n_filters": n_filters})


def test_the_notebook_state_dict_passes_the_header_and_the_deep_check(tmp_path):
    folder = standard_artifact(tmp_path / "a")
    shallow = Lab().check(folder)
    deep = Lab().check(folder, deep=True)
    assert shallow == deep
    assert shallow["architecture"] == "standard"
    assert shallow["n_filters"] == 4
    expected = sum(p.numel() for p in make_standard_classifier(4).parameters()) + sum(
        b.numel() for n, b in make_standard_classifier(4).named_buffers() if not n.endswith("num_batches_tracked")
    )
    assert shallow["parameters"] == expected


def test_the_header_check_never_imports_torch(tmp_path):
    folder = standard_artifact(tmp_path / "a")
    code = (
        "import sys; from grader.labs.vision import Lab; "
        f"print(Lab().check({str(folder)!r})['n_filters']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4", "False"]


def test_a_dbvae_with_its_decoder_passes_and_the_decoder_is_not_part_of_the_parameter_count(tmp_path):
    torch.manual_seed(0)
    model = DBVAE(latent_dim=8, n_filters=4)
    folder = write_artifact(
        tmp_path / "v", model.state_dict(), {"architecture": "dbvae", "n_filters": 4, "latent_dim": 8}
    )
    summary = Lab().check(folder, deep=True)
    assert summary["latent_dim"] == 8
    assert summary["decoder_tensors"] == 10
    assert summary["parameters"] == sum(
        v.numel() for k, v in model.encoder.state_dict().items() if not k.endswith("num_batches_tracked")
    )


def test_a_dbvae_latent_size_out_of_bounds_is_refused(tmp_path):
    model = DBVAE(latent_dim=1, n_filters=4)
    folder = write_artifact(
        tmp_path / "v", model.state_dict(), {"architecture": "dbvae", "n_filters": 4, "latent_dim": 1}
    )
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == "config_out_of_bounds"
    assert "latent_dim" in info.value.message and "2 to 512" in info.value.message


def test_a_dbvae_whose_weights_disagree_with_its_latent_size_is_refused(tmp_path):
    model = DBVAE(latent_dim=8, n_filters=4)
    folder = write_artifact(
        tmp_path / "v", model.state_dict(), {"architecture": "dbvae", "n_filters": 4, "latent_dim": 16}
    )
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == "wrong_output_size"
    assert "encoder.7.weight has 17 outputs" in info.value.message
    assert "33 outputs" in info.value.message


def test_nan_weights_pass_the_header_check_but_not_the_deep_check(tmp_path):
    model = make_standard_classifier(4)
    state = model.state_dict()
    state["5.weight"][3, 3] = float("nan")
    folder = write_artifact(tmp_path / "n", state, {"architecture": "standard", "n_filters": 4})
    assert Lab().check(folder)["n_filters"] == 4
    with pytest.raises(Rejected) as info:
        Lab().check(folder, deep=True)
    assert info.value.code == "non_finite_weights"
    assert "'5.weight'" in info.value.message


def test_a_standard_classifier_with_two_outputs_is_refused(tmp_path):
    model = make_standard_classifier(4, n_outputs=2)
    folder = write_artifact(tmp_path / "o", model.state_dict(), {"architecture": "standard", "n_filters": 4})
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == "wrong_output_size"
    assert "7.weight has 2 outputs" in info.value.message
    assert "one logit per image" in info.value.message


def test_weights_of_another_width_than_the_config_are_refused_naming_the_tensor(tmp_path):
    model = make_standard_classifier(8)
    folder = write_artifact(tmp_path / "w", model.state_dict(), {"architecture": "standard", "n_filters": 4})
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == "wrong_tensors"
    assert "'0.conv.weight' has shape [8, 3, 5, 5], expected [4, 3, 5, 5]" in info.value.message


def test_a_missing_batchnorm_counter_is_refused(tmp_path):
    state = make_standard_classifier(4).state_dict()
    del state["2.bn.num_batches_tracked"]
    folder = write_artifact(tmp_path / "m", state, {"architecture": "standard", "n_filters": 4})
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == "wrong_tensors"
    assert "missing tensor '2.bn.num_batches_tracked'" in info.value.message


@pytest.mark.parametrize(
    ("config", "code", "words"),
    [
        ({"architecture": "standard", "n_filters": 4, "latent_dim": 8}, "bad_config", "latent_dim"),
        ({"architecture": "resnet", "n_filters": 4}, "config_out_of_bounds", "'standard', 'dbvae'"),
        ({"architecture": "standard", "n_filters": 128}, "config_out_of_bounds", "4 to 64"),
        ({"architecture": "standard", "n_filters": 4, "dropout": 0.1}, "bad_config", "'dropout'"),
    ],
)
def test_a_config_outside_the_family_is_refused(tmp_path, config, code, words):
    folder = standard_artifact(tmp_path / "c")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(Rejected) as info:
        Lab().check(folder)
    assert info.value.code == code
    assert words in info.value.message
