"""Lab 3 generation speed: the evaluator's batched answers against a bare `model.generate` on the same prompts.

Usage: python benchmarks/llm_generation.py --data DIR/llm [--adapter DIR] [--base-model DIR] [--device cpu|cuda]
Prints tokens per second of both and their ratio (bare / evaluator; 1.0 means no overhead, the target is <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root

from grader.dataset import load_manifest
from grader.labs.llm import model as llm_model
from grader.labs.llm import tiny_base_dir


def count_new_tokens(tokenizer, answers: list[str]) -> int:
    return sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)


def bare_generate(model, tokenizer, prompts: list[str], device: str) -> tuple[int, float]:
    """One plain batched generate per fixed batch; returns generated non-pad tokens and seconds."""
    config = llm_model.generation_config(tokenizer)
    tokenizer.padding_side = "left"
    texts = [llm_model.prompt_text(tokenizer, p) for p in prompts]
    tokens, started = 0, time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), llm_model.GEN_BATCH):
            enc = tokenizer(
                texts[i : i + llm_model.GEN_BATCH], add_special_tokens=False, padding=True, return_tensors="pt"
            )
            out = model.generate(**enc.to(device), generation_config=config)
            new = out[:, enc["input_ids"].shape[1] :]
            tokens += int((new != tokenizer.pad_token_id).sum())
    if device == "cuda":
        torch.cuda.synchronize()
    return tokens, time.perf_counter() - started


def measure(*, data: Path, adapter: Path | None, base_model: Path | None, device: str, repeat: int) -> dict:
    """Generated tokens per second of the evaluator's batched answers and of a bare generate (best of ``repeat``)."""
    manifest = load_manifest(data)
    prompts = []
    for split in ("public", "private"):
        prompts += json.loads(manifest.file(manifest.splits[split]["prompts"]).read_text())
    model, tokenizer = llm_model.load_base(base_model or tiny_base_dir(data), device)
    if adapter:
        model = llm_model.attach_adapter(model, adapter)
    llm_model.generate_answers(model, tokenizer, prompts[:2], device=device)  # warm-up

    evaluator, bare = [], []
    for _ in range(repeat):  # interleaved, so a change in machine load hits both alike
        started = time.perf_counter()
        answers = llm_model.generate_answers(model, tokenizer, prompts, device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        evaluator.append(count_new_tokens(tokenizer, answers) / (time.perf_counter() - started))
        tokens, seconds = bare_generate(model, tokenizer, prompts, device)
        bare.append(tokens / seconds)
    best_eval, best_bare = max(evaluator), max(bare)
    return {
        "prompts": len(prompts),
        "device": device,
        "evaluator_tokens_per_s": round(best_eval, 1),
        "bare_generate_tokens_per_s": round(best_bare, 1),
        "ratio_bare_over_evaluator": round(best_bare / best_eval, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--base-model", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    figures = measure(
        data=args.data, adapter=args.adapter, base_model=args.base_model, device=args.device, repeat=args.repeat
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
