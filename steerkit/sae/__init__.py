"""Sparse autoencoders on per-token activations: training, metrics and SAELens-format files."""

from steerkit.sae.autoencoder import SparseAutoencoder

__all__ = ["SparseAutoencoder"]
