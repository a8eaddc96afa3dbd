"""The vision lab end to end on a small synthetic course: demo data, reference baselines and the bias audit."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from grader.dataset import load_manifest
from grader.labs import vision
from grader.labs.vision import Lab
from grader.labs.vision import data as vision_data
from grader.labs.vision.model import make_standard_classifier
from grader.registry import EvaluationContext

SKIN = {"L": (236, 200, 178), "D": (96, 60, 42)}


def draw_face(group: str, index: int) -> Image.Image:
    """A cartoon face: a skin-toned oval with eyes and a mouth, on a plain background (sizes vary a little)."""
    rng = np.random.default_rng([ord(group[0]), ord(group[1]), index])
    side = int(rng.integers(70, 120))
    background = tuple(int(c) for c in rng.integers(60, 200, size=3))
    image = Image.new("RGBA", (side, side), background + (255,))
    draw = ImageDraw.Draw(image)
    skin = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in SKIN[group[0]])
    m = side * float(rng.uniform(0.08, 0.14))
    draw.ellipse((m, m * 0.6, side - m, side - m * 0.4), fill=skin)
    hair = (40, 30, 20) if group[1] == "F" else skin
    draw.pieslice((m, m * 0.3, side - m, side * 0.7), 180, 360, fill=hair)
    eye = side * 0.07
    for cx in (side * 0.36, side * 0.64):
        draw.ellipse((cx - eye, side * 0.45 - eye * 0.6, cx + eye, side * 0.45 + eye * 0.6), fill=(30, 20, 20))
    draw.arc((side * 0.33, side * 0.55, side * 0.67, side * 0.78), 20, 160, fill=(140, 30, 40), width=3)
    return image


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course") / "data"
    for group in vision_data.GROUPS:
        (root / "faces" / group).mkdir(parents=True)
        for i in range(1, 6):
            draw_face(group, i).save(root / "faces" / group / f"{i * 3 + 1}.png")
    return root


@pytest.fixture(scope="module")
def small_sizes():
    patch = pytest.MonkeyPatch()
    patch.setattr(vision_data, "AUGMENTATIONS_PER_FACE", 12)
    patch.setattr(vision_data, "CROPS_PER_PHOTO", 16)
    patch.setattr(vision, "REFERENCE_EPOCHS", 10)
    # One thread: two threads on a busy two-core runner are several times slower for these tiny models.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    patch.undo()


@pytest.fixture(scope="module")
def dataset(course, small_sizes, tmp_path_factory):
    out = tmp_path_factory.mktemp("vision-data")
    Lab().prepare_data(course, out, seed=3)
    return out


def evaluate(data_dir, artifact_dir, tmp_path, seed=0):
    manifest = load_manifest(data_dir)
    ctx = EvaluationContext(
        artifact_dir=artifact_dir, data_dir=data_dir, manifest=manifest, out_dir=tmp_path, device="cpu", seed=seed
    )
    return Lab().evaluate(ctx)


def test_demo_set_keeps_every_source_face_in_one_split(dataset):
    manifest = load_manifest(dataset)
    assert manifest.demo_only is True
    assert manifest.lab == "vision"
    public = manifest.splits["public"]["items"]
    private = manifest.splits["private"]["items"]
    face_sources = {
        split: {i["source"] for i in items if i["label"] == 1}
        for split, items in (("public", public), ("private", private))
    }
    assert face_sources["public"].isdisjoint(face_sources["private"])
    # 3 public and 2 private source faces per group, 12 images each
    for group in vision_data.GROUPS:
        assert sum(1 for s in face_sources["public"] if s.startswith(group + "/")) == 3
        assert sum(1 for s in face_sources["private"] if s.startswith(group + "/")) == 2
    assert sum(i["label"] for i in public) == 12 * 12
    assert sum(1 - i["label"] for i in public) + sum(1 - i["label"] for i in private) == 10 * 16
    assert all((i["group"] is None) == (i["label"] == 0) for i in public + private)
    assert not any(i["source"].split("/")[0] in ("astronaut", "camera") for i in public + private)
    with Image.open(dataset / public[0]["file"]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_demo_set_is_the_same_for_the_same_seed_and_differs_for_another(course, small_sizes, dataset, tmp_path):
    Lab().prepare_data(course, tmp_path / "again", seed=3)
    Lab().prepare_data(course, tmp_path / "other", seed=4)
    assert load_manifest(tmp_path / "again").files == load_manifest(dataset).files
    assert load_manifest(tmp_path / "other").files != load_manifest(dataset).files


def test_a_constant_logit_model_detects_no_face_at_five_percent_fpr(dataset, tmp_path):
    model = make_standard_classifier(4)
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    state["7.bias"] = torch.tensor([4.0])
    for i in range(4):
        state[f"{i}.bn.running_var"] = torch.ones_like(state[f"{i}.bn.running_var"])
    (tmp_path / "const").mkdir()
    save_file(state, str(tmp_path / "const" / "model.safetensors"))
    (tmp_path / "const" / "config.json").write_text(json.dumps({"architecture": "standard", "n_filters": 4}))
    result = evaluate(dataset, tmp_path / "const", tmp_path)
    for split in ("public", "private"):
        assert result.metrics[split]["worst_group_tpr"] == 0.0
        assert result.metrics[split]["balanced_accuracy"] == 0.5
        assert result.metrics[split]["threshold"] is None
        assert all(row["accuracy_at_0.5"] == 1.0 for row in result.groups[split].values())


@pytest.fixture(scope="module")
def references(dataset, tmp_path_factory):
    out = {}
    for variant in Lab.reference_variants:
        folder = tmp_path_factory.mktemp(variant)
        summary = Lab().train_reference(dataset, folder, variant=variant, seed=0)
        out[variant] = (folder, summary)
    return out


def test_reference_baselines_train_on_the_public_split_only(references):
    standard, balanced = references["standard"][1], references["balanced"][1]
    assert standard["train_faces"] == 6 * 12  # the lighter groups' 6 public source faces
    assert balanced["train_faces"] == 12 * 12
    assert standard["train_nonfaces"] == balanced["train_nonfaces"]
    assert Lab().check(references["standard"][0], deep=True)["n_filters"] == vision.REFERENCE_FILTERS


def test_the_audit_tells_the_biased_baseline_from_the_balanced_one(dataset, references, tmp_path):
    standard = evaluate(dataset, references["standard"][0], tmp_path)
    balanced = evaluate(dataset, references["balanced"][0], tmp_path)
    for split in ("public", "private"):
        assert standard.details["worst_group"][split] in ("DF", "DM")
        assert standard.metrics[split]["worst_group_tpr"] < balanced.metrics[split]["worst_group_tpr"]
        assert standard.metrics[split]["gap"] > balanced.metrics[split]["gap"]
        for key in ("fgsm_1", "fgsm_2", "fgsm_4", "fgsm_8", "ece", "balanced_accuracy"):
            assert 0.0 <= standard.metrics[split][key] <= 1.0
        row = standard.groups[split]["DM"]
        assert row["tpr_ci_low"] <= row["tpr"] <= row["tpr_ci_high"]


def test_the_audit_is_deterministic_for_a_seed(dataset, references, tmp_path):
    first = evaluate(dataset, references["standard"][0], tmp_path, seed=5)
    second = evaluate(dataset, references["standard"][0], tmp_path, seed=5)
    assert first.metrics == second.metrics
    assert first.groups == second.groups


def test_images_decoded_by_a_warm_box_give_the_audit_of_images_decoded_during_the_job(dataset, references, tmp_path):
    cold = evaluate(dataset, references["standard"][0], tmp_path, seed=5)
    manifest = load_manifest(dataset, verify=True)
    Lab().warm_up(manifest)  # what `serve-one` does with the verified dataset before the job
    public = vision_data.split_items(manifest, "public")
    assert vision_data.split_images(manifest, "public", public) is vision_data._preloaded["images"]["public"]
    # Another manifest object (another dataset, or one not verified by this box) decodes its own images.
    assert (
        vision_data.split_images(load_manifest(dataset), "public", public)
        is not (vision_data._preloaded["images"]["public"])
    )
    ctx = EvaluationContext(
        artifact_dir=references["standard"][0],
        data_dir=dataset,
        manifest=manifest,
        out_dir=tmp_path,
        device="cpu",
        seed=5,
    )
    warm = Lab().evaluate(ctx)
    assert warm.metrics == cold.metrics and warm.groups == cold.groups
