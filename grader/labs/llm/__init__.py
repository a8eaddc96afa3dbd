"""Lab 3, large language models: a LoRA adapter that makes the course's chat model answer in Yoda's style."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from grader.errors import GraderFault
from grader.labs.llm.adapter import (
    CONFIG_FILE,
    DEFAULT_ADAPTER_BYTES,
    WEIGHTS_FILE,
    BaseSpec,
    adapted_by_config,
    check_adapter,
    read_base_spec,
    spec_from_registration,
)
from grader.labs.llm.data import Pair, make_pairs, plain_version, read_jsonl, read_lines, split_indices, write_jsonl
from grader.registry import EvaluationContext, EvaluationOutput, LabEvaluator, MetricSpec

BASE_MODEL_ENV = "GRADER_LLM_BASE_MODEL"  # the course's base model folder, where no option names one
THREADS_ENV = "GRADER_TORCH_THREADS"
HIDDEN_PER_SPLIT = 96  # hidden (prompt, answer) pairs per split for the cross-entropy
PROMPTS_PER_SPLIT = 12  # of those, the prompts whose generated answers are judged
TRAIN_FILE = "train/yoda_train.jsonl"
CLASSIFIER_FILE = "style_classifier.json"
TEST_TEXT_FILE = "public/yoda_test_text.txt"  # the notebook's public test text, as the course package ships it
JUDGE_ANSWERS_FILE = "judge_answers.json"  # for the worker's optional LLM judge; never shown to students
FLUENCY_GATES_KEY = "fluency_gates"  # in JUDGE_ANSWERS_FILE: each answer's fluency gate, by split
REFERENCE_STEPS = 300
REFERENCE_TARGETS = ["q_proj", "v_proj"]
# The 2026 notebook's LoraConfig lists these seven; PEFT adapts those a base has (q, k and v on LFM2) and still
# writes all seven into adapter_config.json.
NOTEBOOK_TARGETS = ["q_proj", "o_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]


def reference_targets(options: dict[str, Any] | None) -> list[str] | str:
    """train-reference's option ``targets``: "notebook", "all-linear", or comma-separated module names."""
    raw = str((options or {}).get("targets") or "").strip()
    if not raw:
        return list(REFERENCE_TARGETS)
    if raw == "notebook":
        return list(NOTEBOOK_TARGETS)
    if raw == "all-linear":
        return raw
    return [name.strip() for name in raw.split(",") if name.strip()]


DESCRIPTION = (
    "Demo only. Built from the course's public style texts (mitdeeplearning 0.7.5, data/text_styles): each line of "
    "yoda.txt is a Yoda-style answer; the data holds no questions, so each prompt ('Tell me about X.') is derived "
    "from the answer's own words. Lines are split at random (fixed seed) into a training file handed to students "
    "and hidden public/private pairs. The style classifier is trained on the training Yoda lines against the "
    "matching leprechaun.txt lines and a de-brogued plain version of them. Students have seen the public package, "
    "so a real course should register hidden texts of its own."
)


def _threads() -> None:
    import torch

    # The tiny model gains nothing from several threads, and OpenMP threads spinning on a busy or quota-limited
    # CPU slow it down many times over.
    torch.set_num_threads(max(1, int(os.environ.get(THREADS_ENV, "1"))))


def adapter_limit(options: dict[str, Any]) -> int:
    """The lab's bound on an adapter's weights (option ``max_adapter_mb``)."""
    try:
        megabytes = float(options.get("max_adapter_mb") or 0)
    except (TypeError, ValueError):
        megabytes = 0
    return int(megabytes * 2**20) if megabytes > 0 else DEFAULT_ADAPTER_BYTES


def tiny_base_dir(data_dir: Path, family: str | None = None) -> Path:
    """Where prepare-data puts the tiny base model of ``family`` (the default one when None): beside the dataset."""
    from grader.labs.llm.base import DEFAULT_FAMILY, FAMILIES, family_of

    return Path(data_dir).parent / "base-models" / FAMILIES[family_of(family or DEFAULT_FAMILY)][1]


def base_families(options: dict[str, Any] | None) -> list[str]:
    """The tiny base families prepare-data builds: option ``base_families`` (comma-separated), else the default."""
    from grader.labs.llm.base import DEFAULT_FAMILY, family_of

    raw = str((options or {}).get("base_families") or DEFAULT_FAMILY)
    return [family_of(name.strip()) for name in raw.split(",") if name.strip()]


def pretrain_steps(options: dict[str, Any] | None) -> int:
    """prepare-data's option ``base_pretrain_steps``: a tiny base's pre-training steps (fewer where only the code
    paths matter, not how well it writes)."""
    from grader.labs.llm.base import PRETRAIN_STEPS

    raw = (options or {}).get("base_pretrain_steps")
    steps = int(raw) if raw not in (None, "") else PRETRAIN_STEPS
    if steps < 1:
        raise ValueError("base_pretrain_steps must be at least 1")
    return steps


class Lab(LabEvaluator):
    name = "llm"
    title = "Large language models: answering in Yoda's style with a LoRA adapter"
    artifact_files = (CONFIG_FILE, WEIGHTS_FILE)
    metrics = (
        # No upper bound holds for every honest evaluation: an adapter can make the model arbitrarily confident
        # in the wrong tokens.
        MetricSpec(
            "cross_entropy",
            "Answer cross-entropy",
            "Mean next-token cross-entropy (nats) of hidden Yoda-style answers under your adapter; lower is better.",
            "min",
            low=0.0,
        ),
        # The same 0-10 scale whether the offline classifier or the course's LLM judge gave it.
        # The statistic the notebook's last cell prints, on the course's public test text: her printout and this
        # number agree when computed the same way.
        MetricSpec(
            "test_loglikelihood",
            "Yoda test loglikelihood",
            "What the notebook's last cell prints: mean next-token cross-entropy of the course's public Yoda test "
            "text under your adapter, tokenised as the tokenizer does by default; lower is better.",
            "min",
            low=0.0,
        ),
        MetricSpec(
            "hidden_loglikelihood",
            "Hidden Yoda loglikelihood",
            "The same statistic over the hidden Yoda answers, each tokenised alone; lower is better.",
            "min",
            low=0.0,
        ),
        MetricSpec(
            "style_score",
            "Style score (0-10)",
            "How much the answers it writes to hidden prompts sound like Yoda, from 0 (not at all) to 10.",
            "max",
            low=0.0,
            high=10.0,
        ),
    )
    primary_metric = "cross_entropy"
    primary_direction = "min"
    tiebreak_metric = "style_score"
    tiebreak_direction = "max"
    queue: ClassVar[str] = "grading-llm"
    leaderboard_columns: ClassVar[tuple[str, ...]] = ("cross_entropy", "test_loglikelihood", "style_score")
    needs_base_model: ClassVar[bool] = True
    reference_variants = ("reference",)

    # ---- the base model -------------------------------------------------------------------------------------

    def base_spec(self, options: dict[str, Any] | None = None, *, default_dir: Path | None = None) -> BaseSpec:
        """The base model adapters must fit.

        On the web, the registration the lab holds (``base_model_registration``: its name, config hash and the
        module table derived from it). In the box and on the command line, the folder the option or the
        environment names, else ``default_dir``; its table is derived here, and where the lab's config hash is
        given (``base_config_sha256``) a folder whose config differs is refused as the platform's fault.
        """
        options = options or {}
        registered = options.get("base_model_registration")
        if isinstance(registered, dict):
            return spec_from_registration(registered)
        folder = options.get("base_model") or os.environ.get(BASE_MODEL_ENV)
        if not folder and default_dir is not None and (default_dir / "config.json").is_file():
            folder = default_dir
        if not folder:
            where = f" (looked in {default_dir})" if default_dir is not None else ""
            raise GraderFault(
                "base_model_missing",
                f"no base model: register one with the lab, give --option base_model=DIR or set {BASE_MODEL_ENV}"
                + where,
            )
        spec = read_base_spec(Path(folder), name=options.get("base_model_name") or None)
        wanted = options.get("base_config_sha256")
        if wanted and wanted != spec.config_sha256:
            raise GraderFault(
                "base_model_mismatch",
                f"the base model folder's config.json has sha256 {spec.config_sha256[:12]}…, the lab's registered "
                f"config {str(wanted)[:12]}…: this node holds another model than the lab grades on",
            )
        return spec

    # ---- checks ---------------------------------------------------------------------------------------------

    def warm_up(self, manifest: Any = None) -> None:
        """Import transformers, PEFT and the scoring modules before a job arrives (seconds of a cold start)."""
        import peft  # noqa: F401

        from grader.labs.llm import loglik, model, modules, style  # noqa: F401

    def check(self, artifact_dir: Path, *, deep: bool = False, options: dict[str, Any] | None = None) -> dict:
        return check_adapter(
            Path(artifact_dir), self.base_spec(options), deep=deep, max_bytes=adapter_limit(options or {})
        )

    def test_text(self, ctx: EvaluationContext) -> str | None:
        """The public text the notebook scores: the lab's option ``test_text``, else the dataset's copy."""
        text = (ctx.options or {}).get("test_text")
        if text:
            return str(text)
        name = ctx.manifest.meta.get("test_text_file")
        return ctx.manifest.file(name).read_text() if name else None

    # ---- data -----------------------------------------------------------------------------------------------

    def prepare_data(
        self, course_data: Path, out_dir: Path, *, seed: int, options: dict[str, Any] | None = None
    ) -> None:
        from grader.dataset import write_manifest
        from grader.labs.llm.base import FAMILIES, TINY_NAME, build_tiny_base, is_current
        from grader.labs.llm.style import train_classifier

        out_dir = Path(out_dir)
        styles = Path(course_data) / "text_styles"
        yoda = read_lines(styles / "yoda.txt")
        leprechaun = read_lines(styles / "leprechaun.txt")
        if len(yoda) != len(leprechaun):
            raise GraderFault("course_data_unavailable", "yoda.txt and leprechaun.txt are no longer line-aligned")
        if out_dir.exists():
            if any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
                raise GraderFault("dataset_exists", f"{out_dir} holds files that are not a dataset; not touching it")
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)

        split = split_indices(len(yoda), seed=seed, hidden_per_split=HIDDEN_PER_SPLIT)
        pairs = make_pairs(yoda)
        write_jsonl(out_dir / TRAIN_FILE, [pairs[i] for i in split.train])
        test_text = Path(course_data) / "lab3" / "yoda_test_text.txt"
        if test_text.is_file():
            (out_dir / TEST_TEXT_FILE).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(test_text, out_dir / TEST_TEXT_FILE)
        splits = {}
        for name, indices in (("public", split.public), ("private", split.private)):
            hidden = [pairs[i] for i in indices]
            write_jsonl(out_dir / f"hidden/{name}.jsonl", hidden)
            prompts = [p.prompt for p in hidden[:PROMPTS_PER_SPLIT]]
            (out_dir / f"hidden/prompts_{name}.json").write_text(json.dumps(prompts, ensure_ascii=False, indent=1))
            splits[name] = {
                "pairs": f"hidden/{name}.jsonl",
                "prompts": f"hidden/prompts_{name}.json",
                "pair_count": len(hidden),
                "prompt_count": len(prompts),
            }

        other = [leprechaun[i] for i in split.train]
        classifier = train_classifier(
            [yoda[i] for i in split.train], other + [plain_version(t) for t in other], seed=seed
        )
        classifier.save(out_dir / CLASSIFIER_FILE)
        # Measured on lines the classifier never saw: the hidden public Yoda answers and the same questions'
        # leprechaun and plain answers.
        held_yoda = classifier.probability([yoda[i] for i in split.public])
        held_other = classifier.probability(
            [leprechaun[i] for i in split.public] + [plain_version(leprechaun[i]) for i in split.public]
        )
        accuracy = (sum(p >= 0.5 for p in held_yoda) + sum(p < 0.5 for p in held_other)) / (
            len(held_yoda) + len(held_other)
        )

        families = base_families(options)
        steps = pretrain_steps(options)
        for family in families:
            base_dir = tiny_base_dir(out_dir, family)
            if not is_current(base_dir, seed=seed, steps=steps):
                build_tiny_base(
                    base_dir,
                    texts=[yoda[i] for i in split.train] + other,
                    chat_pairs=make_pairs(other),
                    # The training file's Yoda lines only, which students hold anyway: never a hidden answer.
                    style_texts=[yoda[i] for i in split.train],
                    seed=seed,
                    family=family,
                    steps=steps,
                )

        write_manifest(
            out_dir,
            name="llm-demo-yoda",
            lab=self.name,
            demo_only=True,
            description=DESCRIPTION,
            splits=splits,
            meta={
                "train_file": TRAIN_FILE,
                "train_pairs": len(split.train),
                "style_classifier": CLASSIFIER_FILE,
                "test_text_file": TEST_TEXT_FILE if (out_dir / TEST_TEXT_FILE).is_file() else None,
                "classifier_holdout_accuracy": round(accuracy, 4),
                "base_model_name": TINY_NAME,
                "base_models": {family: FAMILIES[family][0] for family in families},
                "source": "mitdeeplearning 0.7.5 data/text_styles (yoda.txt, leprechaun.txt)",
                "seed": seed,
            },
        )

    # ---- reference model ------------------------------------------------------------------------------------

    def train_reference(
        self, data_dir: Path, out_dir: Path, *, variant: str, seed: int, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if variant not in self.reference_variants:
            raise ValueError(f"unknown variant {variant!r}; choose among {', '.join(self.reference_variants)}")
        import torch
        from peft import LoraConfig, get_peft_model

        from grader.dataset import load_manifest
        from grader.labs.llm.model import load_base, train_on_pairs

        _threads()
        torch.manual_seed(seed)
        data_dir = Path(data_dir)
        manifest = load_manifest(data_dir)
        spec = self.base_spec(options, default_dir=tiny_base_dir(data_dir))
        model, tokenizer = load_base(spec.path, "cpu")
        config = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=reference_targets(options), task_type="CAUSAL_LM"
        )
        peft_model = get_peft_model(model, config)
        pairs = read_jsonl(manifest.file(manifest.meta["train_file"]))
        steps = int((options or {}).get("steps") or REFERENCE_STEPS)
        started = time.monotonic()
        losses = train_on_pairs(
            peft_model, tokenizer, pairs, steps=steps, batch_size=8, lr=1e-2, seed=seed, max_tokens=128
        )
        peft_model.peft_config["default"].base_model_name_or_path = spec.name
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="llm-reference-") as tmp:
            peft_model.save_pretrained(tmp, safe_serialization=True)
            for fname in self.artifact_files:
                shutil.copyfile(Path(tmp) / fname, out_dir / fname)
        return {
            "variant": variant,
            "base_model": spec.name,
            "steps": steps,
            "target_modules": config.target_modules
            if isinstance(config.target_modules, str)
            else sorted(config.target_modules),
            "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
            "train_s": round(time.monotonic() - started, 1),
        }

    # ---- evaluation -----------------------------------------------------------------------------------------

    def evaluate(self, ctx: EvaluationContext) -> EvaluationOutput:
        import torch

        from grader.labs.llm import loglik
        from grader.labs.llm import model as llm_model
        from grader.labs.llm.modules import peft_adapted_modules
        from grader.labs.llm.style import StyleClassifier

        if ctx.device == "cpu":
            _threads()
        torch.manual_seed(ctx.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        spec = self.base_spec(ctx.options, default_dir=tiny_base_dir(ctx.data_dir))
        try:
            decoding = llm_model.Decoding.from_options(ctx.options)
        except ValueError as exc:
            raise GraderFault("bad_lab_option", f"the lab's decoding options: {exc}") from None
        summary = check_adapter(ctx.artifact_dir, spec, deep=True, max_bytes=adapter_limit(ctx.options))
        manifest = ctx.manifest
        test_text = self.test_text(ctx)
        classifier = StyleClassifier.load(manifest.file(manifest.meta["style_classifier"]))

        model, tokenizer = llm_model.load_base(spec.path, ctx.device)
        model = llm_model.attach_adapter(model, ctx.artifact_dir)
        # PEFT itself, having loaded her config, must have adapted exactly the layers her file holds weights for.
        adapted = peft_adapted_modules(model)
        if adapted != adapted_by_config(ctx.artifact_dir, spec):
            raise GraderFault("adapter_mismatch", "PEFT adapted other layers than the header check expected")
        test_ll = loglik.text_loglikelihood(model, tokenizer, test_text, device=ctx.device) if test_text else None

        metrics: dict[str, dict[str, float | None]] = {}
        answers: dict[str, list[str]] = {}
        prompts: dict[str, list[str]] = {}
        judged: dict[str, list] = {}
        for split in ("public", "private"):
            info = manifest.splits[split]
            pairs: list[Pair] = read_jsonl(manifest.file(info["pairs"]))
            prompts[split] = json.loads(manifest.file(info["prompts"]).read_text())
            ce = llm_model.response_cross_entropy(model, tokenizer, pairs, device=ctx.device)
            answers[split] = llm_model.generate_answers(
                model, tokenizer, prompts[split], device=ctx.device, decoding=decoding
            )
            judged[split] = classifier.judge(answers[split], prompts[split])
            hidden_ll = loglik.texts_loglikelihood(model, tokenizer, [p.answer for p in pairs], device=ctx.device)
            metrics[split] = {
                "cross_entropy": ce,
                "test_loglikelihood": test_ll,
                "hidden_loglikelihood": hidden_ll,
                "style_score": sum(j.score for j in judged[split]) / len(judged[split]) if judged[split] else None,
            }
            # Counts only: no hidden text reaches the logs.
            print(f"llm: {split}: {len(pairs)} answers scored, {len(prompts[split])} generated", file=sys.stderr)

        with llm_model.base_only(model):
            base_answers = llm_model.generate_answers(
                model, tokenizer, prompts["public"], device=ctx.device, decoding=decoding
            )
        base_judged = classifier.judge(base_answers, prompts["public"])

        samples = [
            {
                "kind": "text",
                "split": "public",
                "title": f"Prompt {i + 1}",
                "prompt": prompt,
                "text": answer,
                "base_text": base,
                "style_score": round(mine.score, 3),
                "classifier_score": round(mine.classifier, 3),
                "fluency": mine.fluency.to_json(),
                "base_style_score": round(theirs.score, 3),
                "base_classifier_score": round(theirs.classifier, 3),
                "base_fluency": theirs.fluency.to_json(),
            }
            for i, (prompt, answer, base, mine, theirs) in enumerate(
                zip(prompts["public"], answers["public"], base_answers, judged["public"], base_judged, strict=True)
            )
        ]
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        # The gates go with the answers so that the LLM judge, which never sees the prompts, gates its score alike.
        gates = {split: [round(j.fluency.gate, 4) for j in judged[split]] for split in judged}
        (ctx.out_dir / JUDGE_ANSWERS_FILE).write_text(
            json.dumps({**answers, FLUENCY_GATES_KEY: gates}, ensure_ascii=False)
        )
        return EvaluationOutput(
            metrics=metrics,
            samples=samples,
            details={
                "adapter": summary,
                "base_model": spec.identity(),
                # As the notebook prints it, with what it was computed on, for her to compare with her own run.
                "test_loglikelihood": {
                    "printed": loglik.printed(test_ll) if test_ll is not None else None,
                    "device": ctx.device,
                    "dtype": "float32",
                    "text_sha256": hashlib.sha256(test_text.encode()).hexdigest() if test_text else None,
                },
                "style_judge": "offline-classifier",
                "style_scores": {"public": [round(j.score, 4) for j in judged["public"]]},
                "fluency_gates": {"public": gates["public"]},
                "base_style_score": {
                    "public": sum(j.score for j in base_judged) / len(base_judged) if base_judged else None
                },
                "max_new_tokens": llm_model.MAX_NEW_TOKENS,
                "decoding": decoding.to_json(),
                "max_sequence_tokens": llm_model.MAX_SEQ_TOKENS,
            },
        )
