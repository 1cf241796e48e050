"""Train a vector with a peer library (run inside that peer's own virtual environment).

Usage: python train_peer.py {steering-vectors|repeng} GGUF_FOLDER GGUF_FILE PAIRS_JSON OUT_NPZ REPEATS
Prints one JSON line: the median training time (model load excluded) and the per-run times.
The vectors are saved per layer index of the peer's own convention (block index, 0-based).
"""

import json
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    peer, folder, gguf_file, pairs_path, out, repeats = sys.argv[1:7]
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    pairs = json.load(open(pairs_path))
    if pairs[0][0].startswith(tokenizer.bos_token or "\0"):
        # transformers 4.x builds the GGUF tokenizer with add_bos_token=True, so a chat-templated
        # text (which already starts with <|im_start|>, the BOS) would get it twice. steerkit
        # (transformers 5) reads the text as written; without this the libraries see different
        # token ids and their vectors differ (cosine 0.977-0.998 instead of ~1).
        tokenizer.add_bos_token = False
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, torch_dtype=torch.float32).eval()
    times, vectors = [], {}
    for _ in range(int(repeats)):
        start = time.perf_counter()
        if peer == "steering-vectors":
            from steering_vectors import train_steering_vector

            vector = train_steering_vector(model, tokenizer, [(p, n) for p, n in pairs], batch_size=32)
            vectors = {layer: v.float().numpy() for layer, v in vector.layer_activations.items()}
        else:
            from repeng import ControlModel, ControlVector, DatasetEntry

            wrapped = ControlModel(model, list(range(-1, -model.config.num_hidden_layers, -1)))
            dataset = [DatasetEntry(positive=p, negative=n) for p, n in pairs]
            vector = ControlVector.train(wrapped, tokenizer, dataset, method="pca_diff", batch_size=32)
            vectors = {layer: np.asarray(v) for layer, v in vector.directions.items()}
            model = wrapped.unwrap()
        times.append(time.perf_counter() - start)
    np.savez(out, **{str(k): v for k, v in vectors.items()})
    print(json.dumps({"peer": peer, "median_s": float(np.median(times)), "times_s": times}))


if __name__ == "__main__":
    main()
