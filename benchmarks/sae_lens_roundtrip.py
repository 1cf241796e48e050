"""Interop check: steerkit SAEs load in sae-lens and sae-lens SAEs load in steerkit.

Run with the sae-lens venv (benchmarks/peers/setup.sh), steerkit on the path:
    PYTHONPATH=. benchmarks/.venvs/sae-lens/bin/python benchmarks/sae_lens_roundtrip.py
Prints the largest encode/decode difference per architecture and direction.
"""

import tempfile
from pathlib import Path

import numpy as np
import torch
from sae_lens import SAE

from steerkit.sae import SparseAutoencoder, load_sae, save_sae

rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 16)).astype(np.float32)
x = rng.normal(size=(64, 16)).astype(np.float32)
with tempfile.TemporaryDirectory() as tmp:
    for kind in ("relu", "topk", "jumprelu"):
        ours = SparseAutoencoder(n_features=64, kind=kind, k=8, threshold=0.1, batch_size=256, n_steps=50,
                                 progress=False).fit(X)
        theirs = SAE.load_from_disk(save_sae(Path(tmp) / kind, ours))
        with torch.no_grad():
            z = theirs.encode(torch.from_numpy(x)).numpy()
            x_hat = theirs.decode(torch.from_numpy(z)).numpy()
        print(f"steerkit -> sae-lens {kind}: |dz|={np.abs(z - ours.transform(x)).max():.2e} "
              f"|dx|={np.abs(x_hat - ours.inverse_transform(z)).max():.2e}")
        theirs.save_model(Path(tmp) / f"{kind}-back")
        back = load_sae(Path(tmp) / f"{kind}-back")
        print(f"sae-lens -> steerkit {kind}: |dz|={np.abs(back.transform(x) - z).max():.2e}")
