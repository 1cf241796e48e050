"""SAELens-format files: ``cfg.json`` + ``sae_weights.safetensors`` in one folder.

Written exactly as SAELens (6.x) ``SAE.save_model`` writes them: ``cfg.json`` holds ``d_in``,
``d_sae``, ``dtype``, ``device``, ``apply_b_dec_to_input`` (always true here),
``normalize_activations`` (``"none"``: steerkit folds its input scale into the weights),
``reshape_activations``, ``architecture`` (``"standard"`` = relu, ``"topk"`` with ``k``,
``"jumprelu"``) and ``metadata`` (``model_name``, ``hook_name``: the TransformerLens hook of the
site, see :func:`hook_name`). The weights are ``W_enc (d_in, d_sae)``, ``b_enc (d_sae,)``,
``W_dec (d_sae, d_in)``, ``b_dec (d_in,)`` and, for jumprelu, ``threshold (d_sae,)``, float32.
:func:`load_sae` also reads SAELens 5.x folders, whose ``cfg.json`` is flat (``hook_name``,
``model_name`` at the top level; a topk ``k`` under ``activation_fn_kwargs``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from steerkit._io import atomic_directory, read_safetensors, write_json
from steerkit.lm.sites import Site
from steerkit.sae.autoencoder import SparseAutoencoder

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
_ARCHITECTURES = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}
_HOOKS = {"residual": "hook_resid_post", "attn": "hook_attn_out", "mlp": "hook_mlp_out"}


def hook_name(site: Site) -> str:
    """The TransformerLens hook name of ``site``: ``Site(l)`` is ``blocks.{l-1}.hook_resid_post``
    (``Site(0)``: ``blocks.0.hook_resid_pre``); attn/mlp are ``blocks.{l-1}.hook_attn_out``/``hook_mlp_out``."""
    if site.layer == 0:
        return "blocks.0.hook_resid_pre"
    return f"blocks.{site.layer - 1}.{_HOOKS[site.component]}"


def site_of_hook(name: str | None) -> Site | None:
    """The :class:`Site` of a TransformerLens hook name, or None for any other hook."""
    match = re.fullmatch(r"blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|hook_attn_out|hook_mlp_out)", name or "")
    if match is None:
        return None
    block, hook = int(match.group(1)), match.group(2)
    if hook == "hook_resid_pre":
        return Site(block)
    component = {value: key for key, value in _HOOKS.items()}[hook]
    return Site(block + 1, component)


def save_sae(folder: str | os.PathLike, sae: SparseAutoencoder) -> Path:
    """Write ``sae`` (fitted) to ``folder`` in SAELens's layout, atomically; return the folder."""
    from safetensors.numpy import save_file

    if not hasattr(sae, "W_enc_"):
        raise ValueError("save_sae got an unfitted SparseAutoencoder: call fit (or load_sae) first")
    site = getattr(sae, "site_", None)
    cfg = {
        "d_in": int(sae.n_features_in_), "d_sae": int(sae.n_features_), "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
        "metadata": {"model_name": getattr(sae, "model_name_", None),
                     "hook_name": None if site is None else hook_name(site)},
        "architecture": _ARCHITECTURES[sae.kind],
    }
    if sae.kind == "topk":
        cfg["k"] = int(sae.k)
    weights = {"W_enc": sae.W_enc_, "b_enc": sae.b_enc_, "W_dec": sae.W_dec_, "b_dec": sae.b_dec_}
    if sae.kind == "jumprelu":
        weights["threshold"] = sae.threshold_
    with atomic_directory(folder) as tmp:
        save_file({name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()},
                  str(tmp / WEIGHTS_FILENAME))
        write_json(tmp / CFG_FILENAME, cfg)
    return Path(folder)


def load_sae(folder: str | os.PathLike) -> SparseAutoencoder:
    """A fitted :class:`SparseAutoencoder` from a SAELens-format folder (written by steerkit or SAELens)."""
    folder = Path(folder)
    cfg_path, weights_path = folder / CFG_FILENAME, folder / WEIGHTS_FILENAME
    for path in (cfg_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: pass a folder holding {CFG_FILENAME} and {WEIGHTS_FILENAME}")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{cfg_path} is not valid JSON ({err.msg if hasattr(err, 'msg') else err}); re-save the SAE") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path} must hold a JSON object: re-save the SAE")
    kind = _kind(cfg, cfg_path)
    for field, allowed in (("apply_b_dec_to_input", (True, None)), ("normalize_activations", ("none", None))):
        if cfg.get(field) not in allowed:
            raise ValueError(f"{cfg_path} field {field}={cfg.get(field)!r} is not supported: steerkit reads "
                             f"{field}={allowed[0]!r} (fold the normalisation into the weights first)")
    remedy = "re-save the SAE"
    weights, _ = read_safetensors(weights_path, remedy)
    d_in, d_sae = _int_field(cfg, "d_in", cfg_path), _int_field(cfg, "d_sae", cfg_path)
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if kind == "jumprelu":
        shapes["threshold"] = (d_sae,)
    for name, shape in shapes.items():
        if name not in weights:
            raise ValueError(f"{weights_path} lacks the tensor {name!r} ({kind} SAE): {remedy}")
        if weights[name].shape != shape:
            raise ValueError(f"{weights_path} tensor {name!r} has shape {weights[name].shape}, "
                             f"cfg.json says {shape}: {remedy}")
    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else cfg
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    sae = SparseAutoencoder(n_features=d_sae, kind=kind, **({"k": _int_field({"k": k}, "k", cfg_path)} if kind == "topk" else {}))
    sae.W_enc_, sae.b_enc_, sae.W_dec_, sae.b_dec_ = (weights[name].astype(np.float32) for name in ("W_enc", "b_enc", "W_dec", "b_dec"))
    if kind == "jumprelu":
        sae.threshold_ = weights["threshold"].astype(np.float32)
    sae.n_features_in_, sae.n_features_ = d_in, d_sae
    sae.site_ = site_of_hook(metadata.get("hook_name"))
    sae.model_name_ = metadata.get("model_name")
    return sae


def _kind(cfg: dict, path: Path) -> str:
    architecture = cfg.get("architecture", "standard")
    kinds = {value: key for key, value in _ARCHITECTURES.items()}
    if architecture not in kinds:
        raise ValueError(f"{path} field architecture={architecture!r} is not supported: use one of {sorted(kinds)}")
    return kinds[architecture]


def _int_field(cfg: dict, field: str, path: Path) -> int:
    value = cfg.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path} field {field} must be a positive integer, got {value!r}: fix or re-save the SAE")
    return value
