"""``SparseAutoencoder``: a dictionary of sparse features of activations at one site.

Architecture (SAELens's ``apply_b_dec_to_input=True`` convention, so files are interchangeable):

- pre-activations ``pre = (x - b_dec) @ W_enc + b_enc``, shape ``(n, F)``;
- features ``z = act(pre)``, with ``act`` one of

  * ``"relu"``: ``ReLU(pre)``; trained with ``MSE + l1_coefficient * sum_i |z_i| * ||W_dec_i||``
    (the seed's penalty; the decoder rows are unit-norm after every step, so at the optimiser's
    step boundaries this is the plain L1 of ``z``);
  * ``"topk"``: the ``k`` largest pre-activations of each row, through ReLU, all others 0
    (no sparsity penalty: the L0 is at most ``k`` by construction);
  * ``"jumprelu"``: ``pre * [pre > threshold_]`` with one threshold per feature; trained as in
    Rajamanoharan et al. (2024): ``MSE + l1_coefficient * L0`` where the step function's
    gradient with respect to the threshold is the straight-through rectangle-kernel estimate of
    bandwidth ``bandwidth`` (the encoder and decoder get the ordinary gradients). Here
    ``l1_coefficient`` therefore weighs the count of active features, not their magnitude;

- reconstruction ``x_hat = z @ W_dec + b_dec``, with every row of ``W_dec`` unit-norm (the
  decoder-norm constraint, restored after every optimiser step).

``MSE`` is the squared error summed over the ``d`` activation dimensions and averaged over the
tokens of a batch; the sparsity term is likewise summed over features and averaged over tokens.

Input scaling (``normalize=True``): training inputs are multiplied by one constant ``c`` so that
their mean norm is ``sqrt(d)`` (SAELens's "expected_average_only_in"), which makes
``l1_coefficient`` and ``learning_rate`` comparable across models and layers. After training
``c`` is folded into the weights (``b_enc / c``, ``b_dec / c``, ``threshold / c``; ``W_enc`` and the
unit-norm ``W_dec`` are unchanged, since every activation function here is positively
homogeneous), so the fitted model takes raw activations and its features are those of the
scaled model divided by ``c``; files therefore say ``normalize_activations = "none"``.

Dead features and resampling: a feature is dead when it has not fired (``z > 0``) on any of the
last ``dead_after`` training tokens. During the first half of training, every ``dead_after``
tokens, dead features are re-initialised from high-loss inputs as in Anthropic's "Towards
Monosemanticity" (2023): inputs of the current batch are drawn with probability proportional to
their squared reconstruction error; a dead feature's decoder row becomes the unit vector of that
input's residual ``x - x_hat`` (Anthropic uses the input itself; the residual isolates what the
dictionary misses), its encoder column the same direction scaled to 0.2 times the mean norm of
the living features' encoder columns, its encoder bias 0 (jumprelu: its threshold is reset to
the initial ``threshold``), and the optimiser's moment estimates of these parameters are reset.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from steerkit._values import check_finite

KINDS = ("relu", "topk", "jumprelu")


class _JumpReLU(torch.autograd.Function):
    """``pre * [pre > threshold]`` with the straight-through threshold gradient
    ``-(threshold / bandwidth) * K((pre - threshold) / bandwidth)`` (K: rectangle on |u| < 1/2)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        near = ((pre - threshold).abs() < ctx.bandwidth / 2).to(pre.dtype)
        grad_pre = grad * (pre > threshold)
        grad_threshold = (-(threshold / ctx.bandwidth) * near * grad).sum(0)
        return grad_pre, grad_threshold, None


class _Step(torch.autograd.Function):
    """``[pre > threshold]`` with the straight-through threshold gradient
    ``-(1 / bandwidth) * K((pre - threshold) / bandwidth)``; no gradient to ``pre``."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        near = ((pre - threshold).abs() < ctx.bandwidth / 2).to(pre.dtype)
        return None, (-(1.0 / ctx.bandwidth) * near * grad).sum(0), None


def encode(x, W_enc, b_enc, b_dec, *, kind: str, k: int = 0, threshold=None, bandwidth: float = 1e-3):
    """Feature activations ``(..., F)`` of activations ``x`` ``(..., d)`` (torch, differentiable;
    ``threshold`` ``(F,)`` is used by jumprelu only, ``k`` by topk only)."""
    pre = (x - b_dec) @ W_enc + b_enc
    if kind == "relu":
        return torch.relu(pre)
    if kind == "topk":
        values, indices = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
    flat = pre.reshape(-1, pre.shape[-1])
    return _JumpReLU.apply(flat, threshold, bandwidth).reshape(pre.shape)


class SparseAutoencoder(TransformerMixin, BaseEstimator):
    """Sparse autoencoder fitted on per-token activations (see the module docs for the maths).

    Parameters
    ----------
    n_features : int or None, default=None
        Dictionary size ``F``; ``None`` means ``expansion * d``.
    expansion : int, default=8
        ``F / d`` when ``n_features`` is None (the seed's 8x).
    kind : {"relu", "topk", "jumprelu"}, default="relu"
    l1_coefficient : float, default=0.005
        Sparsity coefficient (relu: decoder-norm-weighted L1; jumprelu: L0; unused by topk).
        In units of the scaled inputs when ``normalize=True``.
    k : int, default=32
        Active features per token of ``kind="topk"``.
    threshold : float, default=0.0
        Initial per-feature threshold of ``kind="jumprelu"`` (scaled-input units).
    bandwidth : float, default=0.001
        Width of the straight-through kernel of ``kind="jumprelu"`` (scaled-input units).
    normalize : bool, default=True
        Scale training inputs to mean norm ``sqrt(d)`` and fold the scale into the weights.
    learning_rate : float, default=1e-3
        Adam learning rate.
    batch_size : int, default=4096
        Tokens per optimiser step.
    n_epochs : int, default=1
        Passes over the data when ``n_steps`` is None.
    n_steps : int or None, default=None
        Optimiser steps; overrides ``n_epochs`` (the data is cycled as needed).
    resample_dead : bool, default=True
        Re-initialise dead features from high-loss inputs during the first half of training.
    dead_after : int, default=100_000
        A feature is dead when it did not fire on the last ``dead_after`` training tokens.
    seed : int, default=0
        Seeds the initialisation, the shuffling and the resampling.
    progress : bool, default=True
        Show a tqdm bar over the optimiser steps.

    Attributes
    ----------
    W_enc_ : ndarray (d, F) float32
    b_enc_ : ndarray (F,) float32
    W_dec_ : ndarray (F, d) float32, unit-norm rows
    b_dec_ : ndarray (d,) float32
    threshold_ : ndarray (F,) float32 (jumprelu only)
    n_features_in_ : int, ``d``
    n_features_ : int, ``F``
    dead_fraction_ : float, share of features dead at the end of training
    history_ : dict of lists, one entry per step: ``"step"``, ``"tokens"``, ``"mse"`` (per
        token, summed over ``d``, scaled-input units), ``"l0"`` (mean active features per token),
        ``"dead_fraction"``, ``"n_resampled"``
    site_ : Site or None; model_name_ : str or None — where the activations came from (set by
        the caller or by :func:`~steerkit.sae.files.load_sae`).
    """

    def __init__(self, n_features=None, *, expansion=8, kind="relu", l1_coefficient=0.005, k=32,
                 threshold=0.0, bandwidth=0.001, normalize=True, learning_rate=1e-3, batch_size=4096,
                 n_epochs=1, n_steps=None, resample_dead=True, dead_after=100_000, seed=0, progress=True):
        self.n_features = n_features
        self.expansion = expansion
        self.kind = kind
        self.l1_coefficient = l1_coefficient
        self.k = k
        self.threshold = threshold
        self.bandwidth = bandwidth
        self.normalize = normalize
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.n_steps = n_steps
        self.resample_dead = resample_dead
        self.dead_after = dead_after
        self.seed = seed
        self.progress = progress

    # ----------------------------------------------------------------------------- validation

    def _check_params(self, d: int) -> int:
        """Validate the hyper-parameters; return the dictionary size ``F``."""
        if self.kind not in KINDS:
            raise ValueError(f"SparseAutoencoder kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("expansion", "batch_size", "n_epochs", "dead_after"):
            _check_positive_int(getattr(self, name), name)
        if self.n_steps is not None:
            _check_positive_int(self.n_steps, "n_steps")
        n_features = self.expansion * d if self.n_features is None else self.n_features
        _check_positive_int(n_features, "n_features")
        if self.kind == "topk":
            _check_positive_int(self.k, "k")
            if self.k > n_features:
                raise ValueError(f"SparseAutoencoder k={self.k} exceeds n_features={n_features}: pass k <= n_features")
        for name in ("l1_coefficient", "threshold", "learning_rate", "bandwidth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f"SparseAutoencoder {name} must be a finite number >= 0, got {value!r}")
        if self.learning_rate == 0 or self.bandwidth == 0:
            raise ValueError("SparseAutoencoder learning_rate and bandwidth must be > 0")
        return int(n_features)

    # ---------------------------------------------------------------------------------- fit

    def fit(self, X, y=None):
        """Train on activations: an array ``(n_tokens, d)`` or a token stream (an object with
        ``d``, ``len()`` and ``batches(batch_size, seed=...)`` yielding float arrays ``(b, d)``,
        such as :class:`~steerkit.activations.streams.TokenStream`). ``y`` is ignored."""
        stream = X if hasattr(X, "batches") else _ArrayStream(self._validated(X, reset=True))
        d = int(stream.d)
        self.n_features_in_ = d
        n_features = self._check_params(d)
        n_tokens = len(stream)
        if n_tokens == 0:
            raise ValueError("SparseAutoencoder.fit got no tokens: pass at least one activation row")
        steps_per_epoch = math.ceil(n_tokens / self.batch_size)
        n_steps = self.n_steps or self.n_epochs * steps_per_epoch
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        batches = _cycled(stream, self.batch_size, self.seed)

        first = torch.as_tensor(next(batches), dtype=torch.float32)
        scale = float(math.sqrt(d) / first.norm(dim=1).mean().clamp_min(1e-12)) if self.normalize else 1.0
        params = _initial_parameters(first * scale, n_features, self.threshold if self.kind == "jumprelu" else None,
                                     generator)
        optimizer = torch.optim.Adam(list(params.values()), lr=self.learning_rate)
        since_fired = torch.zeros(n_features, dtype=torch.long)
        history = {key: [] for key in ("step", "tokens", "mse", "l0", "dead_fraction", "n_resampled")}
        tokens, last_resample = 0, 0
        bar = tqdm(total=n_steps, desc="SAE", disable=not self.progress, unit="step")
        batch = first
        for step in range(n_steps):
            if step:
                batch = torch.as_tensor(next(batches), dtype=torch.float32)
            x = batch * scale
            features, reconstruction = self._forward(x, params)
            squared_error = (reconstruction - x).pow(2).sum(1)
            loss = squared_error.mean() + self.l1_coefficient * self._sparsity(x, features, params)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                params["W_dec"].div_(params["W_dec"].norm(dim=1, keepdim=True).clamp_min(1e-12))
                if "threshold" in params:
                    params["threshold"].clamp_(min=0.0)
                fired = (features > 0).any(0)
                tokens += len(x)
                since_fired += len(x)
                since_fired[fired] = 0
                dead = since_fired >= self.dead_after
                n_resampled = 0
                if (self.resample_dead and dead.any() and step < n_steps // 2
                        and tokens - last_resample >= self.dead_after):
                    n_resampled = self._resample(dead, x, reconstruction.detach(), params, optimizer, rng)
                    since_fired[dead] = 0
                    last_resample = tokens
            for key, value in (("step", step + 1), ("tokens", tokens), ("mse", float(squared_error.detach().mean())),
                               ("l0", float((features > 0).sum(1).float().mean())),
                               ("dead_fraction", float(dead.float().mean())), ("n_resampled", n_resampled)):
                history[key].append(value)
            bar.update(1)
        bar.close()
        self._store(params, scale)
        self.dead_fraction_ = float((since_fired >= self.dead_after).float().mean())
        self.history_ = history
        self.site_ = getattr(stream, "site", None)
        self.model_name_ = getattr(stream, "model_name", None)
        return self

    def _forward(self, x, params):
        features = encode(x, params["W_enc"], params["b_enc"], params["b_dec"], kind=self.kind, k=self.k,
                          threshold=params.get("threshold"), bandwidth=self.bandwidth)
        return features, features @ params["W_dec"] + params["b_dec"]

    def _sparsity(self, x, features, params):
        """Mean per-token sparsity penalty (before ``l1_coefficient``)."""
        if self.kind == "relu":
            return (features.abs() * params["W_dec"].norm(dim=1)).sum(1).mean()
        if self.kind == "jumprelu":
            pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
            return _Step.apply(pre, params["threshold"], self.bandwidth).sum(1).mean()
        return features.new_zeros(())

    def _resample(self, dead, x, reconstruction, params, optimizer, rng) -> int:
        """Re-initialise the ``dead`` features from high-loss rows of ``x``; return how many."""
        index = dead.nonzero().flatten()
        residual = x - reconstruction
        loss = residual.pow(2).sum(1).double().numpy()
        if loss.sum() <= 0:
            return 0
        rows = rng.choice(len(x), size=len(index), p=loss / loss.sum())
        directions = residual[rows] / residual[rows].norm(dim=1, keepdim=True).clamp_min(1e-12)
        alive = ~dead
        encoder_norm = params["W_enc"][:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        params["W_dec"][index] = directions
        params["W_enc"][:, index] = directions.T * 0.2 * encoder_norm
        params["b_enc"][index] = 0.0
        if "threshold" in params:
            params["threshold"][index] = self.threshold
        for name, axis in (("W_dec", 0), ("W_enc", 1), ("b_enc", 0), ("threshold", 0)):
            if name in params:
                for moment in optimizer.state[params[name]].values():
                    if moment.dim():
                        moment.index_fill_(axis, index, 0.0)
        return len(index)

    def _store(self, params, scale: float) -> None:
        """Keep the trained weights as float32 arrays with the input scale folded in."""
        weights = {name: tensor.detach() for name, tensor in params.items()}
        self.W_enc_ = weights["W_enc"].numpy().astype(np.float32)
        self.W_dec_ = weights["W_dec"].numpy().astype(np.float32)
        self.b_enc_ = (weights["b_enc"] / scale).numpy().astype(np.float32)
        self.b_dec_ = (weights["b_dec"] / scale).numpy().astype(np.float32)
        if "threshold" in weights:
            self.threshold_ = (weights["threshold"] / scale).numpy().astype(np.float32)
        self.n_features_ = self.W_dec_.shape[0]

    # ----------------------------------------------------------------------------- inference

    def _validated(self, X, *, reset: bool) -> np.ndarray:
        X = validate_data(self, X, dtype=(np.float32, np.float64), reset=reset)
        return check_finite(X.astype(np.float32, copy=False), "X", "pass finite activations")

    def _weights(self, like: torch.Tensor) -> dict:
        """The fitted weights as tensors on ``like``'s device and dtype."""
        names = ("W_enc_", "b_enc_", "W_dec_", "b_dec_") + (("threshold_",) if self.kind == "jumprelu" else ())
        return {name.rstrip("_"): torch.as_tensor(getattr(self, name), device=like.device, dtype=like.dtype)
                for name in names}

    def encode_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations ``(..., F)`` of activations ``x`` ``(..., d)``, on ``x``'s device and dtype."""
        check_is_fitted(self, "W_enc_")
        weights = self._weights(x)
        return encode(x, weights["W_enc"], weights["b_enc"], weights["b_dec"], kind=self.kind, k=self.k,
                      threshold=weights.get("threshold"), bandwidth=self.bandwidth)

    def decode_torch(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(..., d)`` of feature activations ``z`` ``(..., F)``."""
        check_is_fitted(self, "W_dec_")
        weights = self._weights(z)
        return z @ weights["W_dec"] + weights["b_dec"]

    def transform(self, X) -> np.ndarray:
        """Feature activations ``(n, F)`` float32 of activations ``X`` ``(n, d)``."""
        check_is_fitted(self, "W_enc_")
        X = self._validated(X, reset=False)
        with torch.inference_mode():
            return np.concatenate([self.encode_torch(torch.from_numpy(part)).numpy()
                                   for part in _chunks(X, self.batch_size)] or [np.zeros((0, self.n_features_), np.float32)])

    def inverse_transform(self, Z) -> np.ndarray:
        """Reconstructions ``(n, d)`` float32 of feature activations ``Z`` ``(n, F)``."""
        check_is_fitted(self, "W_dec_")
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.n_features_:
            raise ValueError(f"inverse_transform expects Z of shape (n, {self.n_features_}), got {Z.shape}")
        with torch.inference_mode():
            return self.decode_torch(torch.from_numpy(Z)).numpy()


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"SparseAutoencoder {name} must be a positive integer, got {value!r}")


def _chunks(X: np.ndarray, size: int):
    return (X[start:start + size] for start in range(0, len(X), size))


class _ArrayStream:
    """An in-memory array ``(n, d)`` behind the token-stream interface."""

    def __init__(self, X: np.ndarray):
        self.X = X
        self.d = X.shape[1]

    def __len__(self) -> int:
        return len(self.X)

    def batches(self, batch_size: int, *, seed: int):
        order = np.random.default_rng(seed).permutation(len(self.X))
        return _chunks(self.X[order], batch_size)


def _cycled(stream, batch_size: int, seed: int):
    """Batches of ``stream`` forever, epoch ``e`` shuffled with seed ``seed + e``."""
    epoch = 0
    while True:
        yield from stream.batches(batch_size, seed=seed + epoch)
        epoch += 1


def _initial_parameters(x: torch.Tensor, n_features: int, threshold: float | None, generator) -> dict:
    """Random unit decoder rows, tied encoder (``W_enc = W_dec.T``), zero ``b_enc``, ``b_dec`` the
    mean of the first (scaled) batch ``x``; a jumprelu threshold when ``threshold`` is given."""
    d = x.shape[1]
    W_dec = torch.randn(n_features, d, generator=generator)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    params = {
        "W_enc": W_dec.T.clone(), "b_enc": torch.zeros(n_features),
        "W_dec": W_dec, "b_dec": x.mean(0).clone(),
    }
    if threshold is not None:
        params["threshold"] = torch.full((n_features,), float(threshold))
    return {name: tensor.requires_grad_() for name, tensor in params.items()}
