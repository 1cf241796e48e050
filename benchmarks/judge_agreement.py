"""Judge agreement: LLMJudge (the embedded model as judge) vs the offline embedding judge.

Scores the held-out answers written by ``steerkit run`` (unsteered, prompting and steered
answers per concept) with both judges and reports the Pearson r of their concept scores.

Run:  python benchmarks/judge_agreement.py --runs steerkit-out --concepts pirate formal shakespearean
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from steerkit import load_concept, load_model
from steerkit.activations import ActivationSet
from steerkit.metrics import EmbeddingJudge, LLMJudge


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="steerkit-out")
    parser.add_argument("--concepts", nargs="+", default=["pirate", "formal", "shakespearean"])
    parser.add_argument("--out", default="benchmarks/results/judge_agreement.json")
    args = parser.parse_args(argv)
    lm = load_model()
    frames = []
    for name in args.concepts:
        folder = Path(args.runs) / name
        answers = pd.read_csv(folder / "held_out_answers.csv").fillna("")
        long = answers.melt(id_vars="question", var_name="source", value_name="response")
        embedding = EmbeddingJudge().fit_samples(ActivationSet.load(folder / "activations.safetensors").samples)
        llm = LLMJudge.for_concept(load_concept(name), model=lm)
        long["embedding"] = embedding.concept_scores(long["question"], long["response"])
        long["llm"] = llm.concept_scores(list(long["question"]), list(long["response"]))
        long["concept"] = name
        frames.append(long)
    table = pd.concat(frames, ignore_index=True)
    both = table.dropna(subset=["embedding", "llm"])
    r = float(stats.pearsonr(both["embedding"], both["llm"])[0]) if len(both) > 2 else float("nan")
    result = {"pearson_r": r, "n_scored_by_both": int(len(both)), "n_answers": int(len(table)),
              "llm_missing_share": float(table["llm"].isna().mean()),
              "per_concept_r": {c: float(stats.pearsonr(g["embedding"], g["llm"])[0]) if len(g) > 2 else float("nan")
                                for c, g in both.groupby("concept")}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
