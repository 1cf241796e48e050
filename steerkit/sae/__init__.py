"""Sparse autoencoders on per-token activations: training, metrics and SAELens-format files."""

from steerkit.sae.autoencoder import SparseAutoencoder
from steerkit.sae.files import load_sae, save_sae
from steerkit.sae.metrics import sae_metrics, spliced_loss

__all__ = ["SparseAutoencoder", "load_sae", "sae_metrics", "save_sae", "spliced_loss"]
