"""Lab 2, computer vision: the face classifier's artifact checks, demo data, reference models and bias audit."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, ClassVar

from grader.errors import Rejected
from grader.labs.vision.artifact import (
    CONFIG,
    MAX_TENSORS,
    ONNX_FILE,
    WEIGHTS,
    check_weights,
    expected_tensors,
    read_config,
)
from grader.registry import Direction, EvaluationContext, EvaluationOutput, LabEvaluator, MetricSpec

# The lab as one name: tests and benchmarks reach its pieces through the package.
__all__ = [
    "FGSM_EPSILONS",
    "GROUPS",
    "MAX_TENSORS",
    "SPLITS",
    "Lab",
    "TorchScorer",
    "audit_splits",
    "expected_tensors",
]

SPLITS = ("public", "private")
REFERENCE_FILTERS = 8
REFERENCE_EPOCHS = 12
REFERENCE_BATCH = 32
LIGHTER_GROUPS = ("LF", "LM")
# The audit's groups and attack sizes are named where they are computed (modules that import numpy and torch); the
# declaration repeats them so that checking a result imports neither, and a test keeps the copies equal.
GROUPS = ("LF", "LM", "DF", "DM")
FGSM_EPSILONS = (1, 2, 4, 8)


def _share(key: str, label: str, explanation: str, direction: Direction | None = "max") -> MetricSpec:
    return MetricSpec(key, label, explanation, direction, low=0.0, high=1.0)


# "At 5% FPR": at the threshold that lets 5% of the non-faces pass as faces.
METRICS = (
    _share(
        "worst_group_tpr", "Worst-group detection rate at 5% FPR", "Share of faces detected in the worst-served group."
    ),
    _share(
        "gap", "Largest gap between groups", "Best group's detection rate minus the worst's; lower is fairer.", "min"
    ),
    _share(
        "balanced_accuracy", "Balanced accuracy at 5% FPR", "Mean of the shares of faces found and non-faces rejected."
    ),
    _share("tpr", "Detection rate at 5% FPR", "Share of all faces detected."),
    _share("fpr", "False-positive rate", "Share of non-faces taken for faces; at most 5% by the threshold rule.", None),
    MetricSpec(
        "threshold",
        "Decision threshold (logit)",
        "The face logit from which an image counts as a face (at most 5% of non-faces reach it).",
        None,
    ),
    _share(
        "accuracy_at_0.5",
        "Accuracy at the model's own 50% threshold",
        "Share of all images classified right when 'face' means a face probability above 50%.",
    ),
    _share(
        "ece", "Expected calibration error", "Gap between confidence and accuracy over 15 bins; lower is better.", "min"
    ),
    *(
        _share(
            f"fgsm_{eps}",
            f"Accuracy under FGSM attack, eps {eps}/255",
            f"Accuracy at the model's own 50% threshold after each pixel is nudged {eps}/255 to fool it.",
        )
        for eps in FGSM_EPSILONS
    ),
)
GROUP_METRICS = (
    _share("tpr", "Detection rate at 5% FPR", "Share of this group's faces detected."),
    _share("tpr_ci_low", "Detection rate, 95% interval low", "Bootstrap over source faces: the interval's lower end."),
    _share(
        "tpr_ci_high", "Detection rate, 95% interval high", "Bootstrap over source faces: the interval's upper end."
    ),
    _share("mean_probability", "Mean face probability", "Average probability of 'face' on this group's faces."),
    _share(
        "accuracy_at_0.5",
        "Detection rate at the model's own 50% threshold",
        "Share of this group's faces given a face probability above 50%.",
    ),
    MetricSpec("count", "Faces", "Number of this group's face images in the split.", None, low=0.0),
)


class Lab(LabEvaluator):
    name = "vision"
    title = "Computer vision: face detection with a bias audit"
    artifact_files = (WEIGHTS, CONFIG)
    metrics = METRICS
    group_names = GROUPS
    group_metrics = GROUP_METRICS
    primary_metric = "worst_group_tpr"
    primary_direction = "max"
    tiebreak_metric = "balanced_accuracy"
    tiebreak_direction = "max"
    queue: ClassVar[str] = "grading-vision"
    leaderboard_columns: ClassVar[tuple[str, ...]] = ("worst_group_tpr", "balanced_accuracy", "gap", "fgsm_4", "ece")
    reference_variants = ("standard", "balanced")

    # ----------------------------------------------------------------- checks
    def cost_is_bounded(self, file_names: set[str]) -> bool:
        return ONNX_FILE not in file_names

    def artifact_file_sets(self, options: dict[str, Any] | None = None) -> list[tuple[str, ...]]:
        """A student-defined architecture as one ONNX file is accepted only where the course enabled it."""
        if str((options or {}).get("allow_onnx", "0")).lower() in ("1", "true", "yes"):
            return [self.artifact_files, (ONNX_FILE,)]
        return [self.artifact_files]

    def warm_up(self, manifest: Any = None) -> None:
        """Import what the audit needs (torch, fairlearn, the model family) and decode the verified dataset's
        images (a few MB for the demo set: the box's measured memory says what a larger one costs) before a job."""
        from grader.labs.vision import data as vision_data
        from grader.labs.vision import metrics, model  # noqa: F401

        if manifest is not None:
            vision_data.preload_images(manifest, SPLITS)

    def check(self, artifact_dir: Path, *, deep: bool = False, options: dict[str, Any] | None = None) -> dict[str, Any]:
        artifact_dir = Path(artifact_dir)
        if (artifact_dir / ONNX_FILE).is_file() and not (artifact_dir / WEIGHTS).exists():
            from grader.labs.vision import onnx as vision_onnx

            return vision_onnx.check_in_subprocess(artifact_dir / ONNX_FILE, deep=deep)
        cfg = read_config(artifact_dir)
        header, names = check_weights(artifact_dir, cfg)
        if deep:
            from grader.safetensors_io import ensure_finite, load_tensors

            ensure_finite(load_tensors(artifact_dir / WEIGHTS, names))
        return {
            "format": "safetensors",
            **cfg,
            "parameters": sum(header[n].numel for n in names if not n.endswith("num_batches_tracked")),
            "decoder_tensors": len(header) - len(names),
        }

    # ------------------------------------------------------------------- data
    def prepare_data(self, course_data: Path, out_dir: Path, *, seed: int) -> None:
        from grader.dataset import write_manifest
        from grader.labs.vision import data as vision_data

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        splits = vision_data.write_demo_set(Path(course_data), out_dir, seed=seed)
        write_manifest(
            out_dir,
            name=f"vision-demo-seed{seed}",
            lab=self.name,
            demo_only=True,
            description=vision_data.DESCRIPTION,
            splits=splits,
            meta={
                "image_size": vision_data.IMAGE_SIZE,
                "groups": list(vision_data.GROUPS),
                "augmentations_per_face": vision_data.AUGMENTATIONS_PER_FACE,
                "public_faces_per_group": vision_data.PUBLIC_FACES_PER_GROUP,
                "nonface_photos": list(vision_data.NONFACE_PHOTOS),
                "seed": seed,
            },
        )

    # -------------------------------------------------------------- reference
    def train_reference(self, data_dir: Path, out_dir: Path, *, variant: str, seed: int) -> dict[str, Any]:
        """Train a tiny standard classifier on the public split: lighter-skinned faces only, or every group."""
        import numpy as np
        from safetensors.torch import save_file

        from grader.dataset import load_manifest
        from grader.labs.vision import data as vision_data
        from grader.labs.vision import model as vision_model

        if variant not in self.reference_variants:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(self.reference_variants)}")
        manifest = load_manifest(data_dir)
        items = [
            item
            for item in vision_data.split_items(manifest, "public")
            if item["label"] == 0 or variant == "balanced" or item["group"] in LIGHTER_GROUPS
        ]
        images = vision_data.load_images(manifest, items)
        labels = np.array([item["label"] for item in items], dtype=np.float32)
        started = time.perf_counter()
        model, loss = vision_model.train_classifier(
            images,
            labels,
            n_filters=REFERENCE_FILTERS,
            epochs=REFERENCE_EPOCHS,
            batch_size=REFERENCE_BATCH,
            seed=seed,
        )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(out_dir / WEIGHTS))
        config = {"architecture": "standard", "n_filters": REFERENCE_FILTERS}
        (out_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        return {
            "variant": variant,
            **config,
            "epochs": REFERENCE_EPOCHS,
            "train_faces": int(labels.sum()),
            "train_nonfaces": int((labels == 0).sum()),
            "final_loss": loss,
            "train_s": round(time.perf_counter() - started, 2),
        }

    # ------------------------------------------------------------- evaluation
    def evaluate(self, ctx: EvaluationContext) -> EvaluationOutput:
        artifact_dir = Path(ctx.artifact_dir)
        if (artifact_dir / ONNX_FILE).is_file() and not (artifact_dir / WEIGHTS).exists():
            if str(ctx.options.get("allow_onnx", "0")).lower() not in ("1", "true", "yes"):
                raise Rejected(
                    "onnx_not_enabled",
                    "This course accepts the lab's model as model.safetensors + config.json only; "
                    "ONNX models are not enabled.",
                )
            from grader.labs.vision import onnx as vision_onnx

            return audit_splits(ctx, vision_onnx.OnnxScorer(artifact_dir / ONNX_FILE, device=ctx.device))
        return audit_splits(ctx, TorchScorer(artifact_dir, device=ctx.device, seed=ctx.seed))


class TorchScorer:
    """Scores images with a checked safetensors artifact of the lab's architecture family."""

    can_attack = True

    def __init__(self, artifact_dir: Path, *, device: str, seed: int):
        import torch

        from grader.labs.vision import model as vision_model
        from grader.safetensors_io import load_tensors

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        cfg = read_config(artifact_dir)
        _, names = check_weights(artifact_dir, cfg)
        tensors = load_tensors(artifact_dir / WEIGHTS, names)
        self.device = device
        self.model = vision_model.face_logit_model(
            cfg["architecture"], cfg["n_filters"], cfg["latent_dim"], tensors
        ).to(device)

    def logits(self, images):
        from grader.labs.vision import model as vision_model

        return vision_model.predict_logits(self.model, images, device=self.device)

    def fgsm(self, images, labels) -> dict[int, float]:
        from grader.labs.vision import model as vision_model

        return vision_model.fgsm_accuracy(self.model, images, labels, device=self.device)


def audit_splits(ctx: EvaluationContext, scorer: Any) -> EvaluationOutput:
    """Run the bias audit of one scorer on both splits of the dataset."""
    import numpy as np

    from grader.labs.vision import data as vision_data
    from grader.labs.vision import metrics as vision_metrics
    from grader.labs.vision.model import FGSM_EPSILONS

    metrics: dict[str, dict[str, float | None]] = {}
    groups: dict[str, dict[str, dict[str, float | None]]] = {}
    timings: dict[str, float] = {"load_s": 0.0, "inference_s": 0.0, "audit_s": 0.0, "fgsm_s": 0.0}
    worst: dict[str, str | None] = {}
    for split in SPLITS:
        t0 = time.perf_counter()
        items = vision_data.split_items(ctx.manifest, split)
        images = vision_data.split_images(ctx.manifest, split, items)
        labels = np.array([item["label"] for item in items], dtype=np.int64)
        t1 = time.perf_counter()
        logits = np.asarray(scorer.logits(images), dtype=np.float64)
        t2 = time.perf_counter()
        if logits.shape != (len(items),) or not np.isfinite(logits).all():
            raise Rejected(
                "non_finite_outputs",
                "The model gives NaN or infinite face logits on some images; check its weights "
                "(e.g. BatchNorm running variances) and retrain with a lower learning rate.",
            )
        split_metrics, table = vision_metrics.audit(
            logits,
            labels,
            [item["group"] for item in items],
            [item["source"] for item in items],
            seed=ctx.seed,
        )
        t3 = time.perf_counter()
        if getattr(scorer, "can_attack", False):
            attacked = scorer.fgsm(images, labels)
            for eps in FGSM_EPSILONS:
                split_metrics[f"fgsm_{eps}"] = attacked[eps]
        else:
            # Attacks need the model's gradients; a scorer without them reports "not available", never zero.
            for eps in FGSM_EPSILONS:
                split_metrics[f"fgsm_{eps}"] = None
        t4 = time.perf_counter()
        metrics[split] = split_metrics
        groups[split] = table
        worst[split] = vision_metrics.worst_group(table)
        for key, seconds in (("load_s", t1 - t0), ("inference_s", t2 - t1), ("audit_s", t3 - t2), ("fgsm_s", t4 - t3)):
            timings[key] += seconds
    for split_metrics in metrics.values():
        for key, value in split_metrics.items():
            if value is not None and not math.isfinite(value):
                split_metrics[key] = None
    details = {
        "threshold_rule": (
            "A face is detected when its logit is >= the threshold: the smallest observed logit such that at most "
            f"{vision_metrics.TARGET_FPR:.0%} of the non-faces reach it (ties count against the model)."
        ),
        "worst_group": worst,
        "bootstrap": {"resamples": vision_metrics.BOOTSTRAP_RESAMPLES, "unit": "source face", "level": 0.95},
        "fgsm": {"epsilons_255": list(FGSM_EPSILONS), "decision": "the model's own threshold (probability > 0.5)"},
        "ece_bins": vision_metrics.ECE_BINS,
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return EvaluationOutput(metrics=metrics, groups=groups, samples=[], details=details)
