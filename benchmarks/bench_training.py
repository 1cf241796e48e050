"""Vector training speed against peers: the same 128 contrast pairs, all layers, last-token reads.

steerkit (float32 and bfloat16: pooled prompt-only extraction + PVSteerer, with and without
shared-prefix reuse) against
`steering-vectors` (`train_steering_vector`, mean aggregator, batch 32) and `repeng`
(`ControlVector.train`, pca_diff, batch 32), each peer in its own virtual environment
(`bash benchmarks/peers/setup.sh`). All run one after another on this machine; model loading is
excluded; medians over repeats. Also checks that steerkit's PV vector matches steering-vectors'
mean vector (cosine per layer, float32).

Run: bash benchmarks/peers/setup.sh && python benchmarks/bench_training.py   (about 5 minutes)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from steerkit import PVSteerer, load_concept, load_model
from steerkit.activations import extract_activations
from steerkit.lm.loading import embedded_gguf_path

ROOT = Path(__file__).resolve().parent


def contrast_texts(lm, n_pairs: int) -> list[tuple[str, str]]:
    concept = load_concept("formal")
    questions = list(concept.extraction_questions) + list(concept.evaluation_questions)
    pairs = [(lm.chat_prompt(q, p.pos, role="user"), lm.chat_prompt(q, p.neg, role="user"))
             for q in questions for p in concept.instruction_pairs]
    return pairs[:n_pairs]


def steerkit_training(lm, pairs, repeats: int, batch_size: int, share_prefixes: bool) -> tuple[float, np.ndarray]:
    texts = [p for p, _ in pairs] + [n for _, n in pairs]
    y = np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
    ids = np.r_[np.arange(len(pairs)), np.arange(len(pairs))]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        X = extract_activations(lm, texts, batch_size=batch_size, share_prefixes=share_prefixes)["prompt_last"]
        vector = PVSteerer().fit(X, y, contrast_ids=ids).vector_
        times.append(time.perf_counter() - start)
    return float(np.median(times)), vector


def peer_training(peer: str, pairs_path: Path, repeats: int, workdir: Path) -> tuple[float, dict]:
    gguf = embedded_gguf_path("smollm2-135m-instruct")
    out = workdir / f"{peer}.npz"
    python = ROOT / ".venvs" / peer / "bin" / "python"
    result = subprocess.run([str(python), str(ROOT / "peers" / "train_peer.py"), peer, str(gguf.parent), gguf.name,
                             str(pairs_path), str(out), str(repeats)], capture_output=True, text=True, check=True)
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    vectors = dict(np.load(out))
    return timing["median_s"], {int(k): v for k, v in vectors.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-pairs", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="steerkit's batch size")
    parser.add_argument("--out", default="benchmarks/results/training_vs_peers.json")
    args = parser.parse_args(argv)
    lm32 = load_model(dtype="float32")
    pairs = contrast_texts(lm32, args.n_pairs)
    n_tokens = sum(len(lm32.tokenizer(t, add_special_tokens=False)["input_ids"]) for pair in pairs for t in pair)
    result = {"n_pairs": len(pairs), "n_tokens": n_tokens, "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        pairs_path = Path(tmp) / "pairs.json"
        pairs_path.write_text(json.dumps(pairs))
        peers = {}
        for peer in ("steering-vectors", "repeng"):
            result["seconds"][peer], peers[peer] = peer_training(peer, pairs_path, args.repeats, Path(tmp))
        lm16 = load_model(dtype="bfloat16")
        vectors = {}
        for name, lm in (("float32", lm32), ("bfloat16", lm16)):
            for share, label in ((False, " plain pass"), (True, "")):
                key = f"steerkit {name}{label}"
                result["seconds"][key], vectors[key] = steerkit_training(lm, pairs, args.repeats, args.batch_size, share)
    sv = peers["steering-vectors"]

    def cosines(pv):
        return [float(pv[layer + 1] @ v / (np.linalg.norm(pv[layer + 1]) * np.linalg.norm(v))) for layer, v in sorted(sv.items())]
    fastest_peer = min(result["seconds"]["steering-vectors"], result["seconds"]["repeng"])
    result.update({
        "tokens_per_s": {k: n_tokens / v for k, v in result["seconds"].items()},
        "speedup_vs_fastest_peer": {k: fastest_peer / v for k, v in result["seconds"].items() if k.startswith("steerkit")},
        "cosine_pv_vs_steering_vectors_min": min(cosines(vectors["steerkit float32"])),
        "cosine_plain_pass_vs_steering_vectors_min": min(cosines(vectors["steerkit float32 plain pass"])),
        "cosine_per_layer": cosines(vectors["steerkit float32"]),
    })
    print(json.dumps({k: v for k, v in result.items() if k != "cosine_per_layer"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
