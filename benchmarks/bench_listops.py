"""ListOps test accuracy on the embedded model: prompting against trained steering and LoRA (issue 12).

One seeded ListOps split (depth <= 2 by default), the embedded SmolLM2-135M-Instruct in float32,
greedy answers of up to 8 tokens scored by their last standalone digit. Conditions:

- unsteered zero-shot and few-shot (3 solved expressions from the validation split in the prompt);
- trained vectors: ``LowRankSteerer(variant="vector")``, one vector per block output;
- ``LowRankSteerer`` rank 8 on every block output, and on every attention and MLP output;
- LoRA through peft on the attention's q/v projections, its rank chosen by ``rank_matching`` to
  the block adapter's parameter count.

Every trained method gets the same examples, epochs, batch size and seed, hence the same token
budget (the steerers' lr 9e-4 and 3 % warm-up; batch 4 without accumulation here, so that the
small default budget still makes 24 optimiser steps). Accuracy comes with a Wilson 95 %
interval over the test expressions. Writes benchmarks/results/listops.json and listops.png.

Cost on 2 CPU cores (float32): a training forward+backward runs at about 100 tokens/s on a quiet
machine and a ListOps example is about 135 tokens (the instruction is 75 of them), so each
steerer needs about 1.3 s per training example and LoRA about 2.5x that; each test condition
needs about 0.4 s per expression (the few-shot one about 3x). The defaults (96 training and
100 test expressions) take about 15 minutes; the script prints the time left after each method.
That budget is far below seed 002's (thousands of examples): expect accuracies near the
unsteered model's, and raise --n-train (linear cost) for the claim itself.

Run (lead, quiet machine): python benchmarks/bench_listops.py          (about 15 minutes on 2 cores)
Check that it works:       python benchmarks/bench_listops.py --n-train 16 --n-test 8 --out /tmp/listops.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from statsmodels.stats.proportion import proportion_confint

from steerkit import load_model
from steerkit._io import atomic_path, write_json
from steerkit.training import (
    LoRAFineTuner,
    LowRankSteerer,
    listops_accuracy,
    listops_completion,
    listops_prompt,
    listops_splits,
    rank_matching,
)

RESULTS = Path(__file__).resolve().parent / "results"
N_SHOTS = 3
MAX_NEW_TOKENS = 8
N_TRAINED = 4  # trained methods: vectors, low-rank blocks, low-rank attn+mlp, LoRA


def wilson(accuracy: float, n: int) -> tuple[float, float]:
    """Wilson 95 % interval of an accuracy measured on ``n`` expressions."""
    low, high = proportion_confint(round(accuracy * n), n, alpha=0.05, method="wilson")
    return float(low), float(high)


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.8), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    names = [row["name"] for row in rows]
    accuracy = [row["accuracy"] for row in rows]
    errors = [[a - row["ci95"][0] for a, row in zip(accuracy, rows)], [row["ci95"][1] - a for a, row in zip(accuracy, rows)]]
    ax.bar(names, accuracy, yerr=errors, capsize=4, color=["0.6"] * 2 + ["tab:blue"] * (len(rows) - 3) + ["tab:orange"])
    for x, row in enumerate(rows):
        if row["trainable_parameters"]:
            ax.annotate(f"{row['trainable_parameters'] / 1e3:.0f}k params", (x, 0.01), ha="center", fontsize=7, rotation=90)
    ax.axhline(0.1, color="0.4", ls=":", lw=1, label="chance (10 digits)")
    ax.set_ylabel("test accuracy (Wilson 95 % CI)")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=96)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "listops.json")
    args = parser.parse_args()

    lm = load_model(dtype="float32")
    splits = listops_splits(args.n_train, N_SHOTS, args.n_test, seed=args.seed, max_depth=args.max_depth)
    prompts = [listops_prompt(e.expression) for e in splits.train]
    completions = [listops_completion(e.answer) for e in splits.train]
    test = [listops_prompt(e.expression) for e in splits.test]
    few_shot = [listops_prompt(e.expression, shots=splits.validation) for e in splits.test]
    targets = [e.answer for e in splits.test]
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "gradient_accumulation": args.gradient_accumulation,
                "seed": args.seed, "progress": True}
    generation = {"max_new_tokens": MAX_NEW_TOKENS, "batch_size": 32}

    rows: list[dict] = []

    def record(name: str, answers: list[str], estimator=None) -> None:
        accuracy = listops_accuracy(answers, targets)
        rows.append({"name": name, "accuracy": accuracy, "ci95": wilson(accuracy, len(targets)),
                     "trainable_parameters": estimator.n_trainable_parameters_ if estimator else 0,
                     "train_seconds": estimator.fit_seconds_ if estimator else 0.0,
                     "tokens_per_second": estimator.history_.tokens_per_second if estimator else None,
                     "final_loss": estimator.history_.loss[-1] if estimator else None})
        print(f"{name:>26}: accuracy {accuracy:.3f} [{rows[-1]['ci95'][0]:.3f}, {rows[-1]['ci95'][1]:.3f}], "
              f"{rows[-1]['trainable_parameters']} params, trained {rows[-1]['train_seconds']:.0f} s", file=sys.stderr)

    started = time.perf_counter()
    record("unsteered zero-shot", lm.generate(test, **generation))
    record(f"unsteered {N_SHOTS}-shot", lm.generate(few_shot, **generation))
    progress = {"done": 0}

    def train(name: str, estimator):
        estimator.fit(prompts, completions)
        record(name, estimator.generate(test, **generation), estimator)
        progress["done"] += 1
        elapsed = time.perf_counter() - started
        left = elapsed / progress["done"] * (N_TRAINED - progress["done"])
        print(f"[{elapsed / 60:.1f} min so far; about {left / 60:.1f} min to go]", file=sys.stderr)
        return estimator

    train("trained vectors (blocks)", LowRankSteerer(lm, variant="vector", **settings))
    blocks = train(f"low-rank r{args.rank} (blocks)", LowRankSteerer(lm, rank=args.rank, **settings))
    train(f"low-rank r{args.rank} (attn+mlp)", LowRankSteerer(lm, rank=args.rank, sites="submodules", **settings))
    lora_rank = rank_matching(lm, blocks.n_trainable_parameters_)
    train(f"LoRA q/v r{lora_rank} (matched)", LoRAFineTuner(lm, rank=lora_rank, **settings))
    result = {"model": lm.name, "dtype": "float32", "n_train": args.n_train, "n_test": args.n_test,
              "max_depth": args.max_depth, "n_shots": N_SHOTS, "seed": args.seed, "epochs": args.epochs,
              "batch_size": args.batch_size, "gradient_accumulation": args.gradient_accumulation, "rank": args.rank,
              "lora_rank": lora_rank, "max_new_tokens": MAX_NEW_TOKENS,
              "wall_seconds": time.perf_counter() - started, "rows": rows}
    write_json(args.out, result)
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
