"""``LoRAFineTuner``: LoRA fine-tuning through ``peft``, the baseline of the trained steerers.

LoRA is not steering: it adds a trained low-rank update ``(lora_alpha / r) · B · A`` to weight
matrices inside the model (by default the attention's query and value projections, see
:func:`attention_query_value_modules`), where a steerer adds to activations at sites. It is
trained with the steerers' examples (:func:`~steerkit.training.data.encode_examples`), loss
(mean negative log-likelihood per answer token) and loop
(:func:`~steerkit.training.loop.optimise`), so for equal settings "same data, same token
budget" holds by construction; :func:`rank_matching` picks the rank whose trainable parameter
count matches a steerer's.

The user's :class:`~steerkit.lm.LanguageModel` is left as it was: peft injects the adapters
into it only while :meth:`LoRAFineTuner.fit`, :meth:`~LoRAFineTuner.generate`,
:meth:`~LoRAFineTuner.score` or :meth:`~LoRAFineTuner.save` runs, and removes them again
(unloaded, never merged) when the call ends, also on error. The trained weights live in the
estimator (``adapter_state_``). Inside those calls the model is adapted, so do not use the
same model from another thread meanwhile.

``peft`` is optional: ``pip install 'steerkit[lora]'``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import numbers
import os
import time
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from steerkit._io import atomic_directory, read_safetensors, write_json
from steerkit.lm.language_model import LanguageModel
from steerkit.lm.sites import find_sublayer_path
from steerkit.training._base import (SETTINGS, UNSAVED_PARAMS, check_language_model, exact_match, model_fields,
                                     read_metadata, seeded)
from steerkit.training.data import completion_loss, encode_examples
from steerkit.training.loop import TrainingHistory, TrainingSettings, frozen, optimise

SEPARATE_QUERY_VALUE = ("q_proj", "v_proj")
"""Names of separate query and value projections (Llama, SmolLM2, Qwen2, Gemma, Phi)."""
FUSED_QUERY_KEY_VALUE = ("qkv_proj", "c_attn", "query_key_value")
"""Names of one projection computing queries, keys and values together (Phi-3, GPT-2, GPT-NeoX)."""
METADATA_FILE = "steerkit.json"
"""steerkit's file in a saved adapter directory, beside peft's ``adapter_model.safetensors``
and ``adapter_config.json``."""
REMEDY = "re-create it with LoRAFineTuner(...).fit(...).save(...)"


def import_peft():
    """The ``peft`` module; an ImportError saying how to install it when it is missing."""
    try:
        import peft
    except ImportError:
        raise ImportError("LoRAFineTuner needs the peft package: install it with `pip install 'steerkit[lora]'`") from None
    return peft


def attention_query_value_modules(lm: LanguageModel) -> list[str]:
    """The default LoRA targets: the query and value projections of every block's attention.

    Rule: in each decoder block's attention submodule (found as for the ``"attn"`` site, see
    :mod:`steerkit.lm.sites`), the children named ``q_proj`` and ``v_proj``; an attention
    without both uses its fused query-key-value projection (a child named ``qkv_proj``,
    ``c_attn`` or ``query_key_value``) instead. Returns full module names inside ``lm.model``
    (``"model.layers.0.self_attn.q_proj"``, ...), which peft's ``target_modules`` matches exactly.

    Raises
    ------
    ValueError : a block's attention has neither; the message says to pass ``target_modules``.
    """
    names = []
    for index, block in enumerate(lm.blocks):
        attention_path = find_sublayer_path(block, "attn", lm.sublayer_paths["attn"])
        children = {name for name, _ in block.get_submodule(attention_path).named_children()}
        chosen = (list(SEPARATE_QUERY_VALUE) if set(SEPARATE_QUERY_VALUE) <= children
                  else [name for name in FUSED_QUERY_KEY_VALUE if name in children])
        if not chosen:
            raise ValueError(f"the attention of block {index + 1} of {lm.name} has no {'/'.join(SEPARATE_QUERY_VALUE)} "
                             f"or {'/'.join(FUSED_QUERY_KEY_VALUE)} projection: pass target_modules=[module names]")
        names += [f"{lm.block_path}.{index}.{attention_path}.{name}" for name in chosen]
    return names


def lora_widths(lm: LanguageModel, target_modules=None) -> dict[str, int]:
    """``{module name: d_in + d_out}`` of every module LoRA adapts; a rank-``r`` adapter trains
    ``r · (d_in + d_out)`` parameters there (``A``: ``(r, d_in)``, ``B``: ``(d_out, r)``).

    ``target_modules`` : None (:func:`attention_query_value_modules`) or module names, matched
    by peft's own rule (a name equal to a module's full name or to the end of it after a dot).

    Raises
    ------
    ValueError : a name list that is empty or matches no module, or a matched module without a
        2-D weight.
    """
    peft = import_peft()
    from peft.tuners.tuners_utils import check_target_module_exists

    targets = _check_targets(lm, target_modules)
    config = peft.LoraConfig(target_modules=targets)
    widths = {}
    for name, module in lm.model.named_modules():
        if check_target_module_exists(config, name):
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
                raise ValueError(f"target_modules matches {name} ({type(module).__name__}), which has no 2-D weight for "
                                 "LoRA to adapt: name linear projections only")
            widths[name] = int(sum(weight.shape))
    if not widths:
        raise ValueError(f"target_modules {targets} matches no module of {lm.name}: pass names of its linear "
                         "projections, such as 'q_proj'")
    return widths


def rank_matching(lm: LanguageModel, n_parameters: int, target_modules=None) -> int:
    """The LoRA rank whose trainable parameter count is closest to ``n_parameters`` without
    exceeding it (e.g. a ``LowRankSteerer``'s ``n_trainable_parameters_``).

    A rank-``r`` LoRA on ``target_modules`` (as in :func:`lora_widths`) trains
    ``r · Σ (d_in + d_out)`` parameters. When even rank 1 trains more than ``n_parameters``,
    a warning gives both counts and 1 is returned.
    """
    if isinstance(n_parameters, bool) or not isinstance(n_parameters, numbers.Integral) or n_parameters < 1:
        raise ValueError(f"n_parameters must be a positive integer (a parameter count), got {n_parameters!r}")
    per_rank = sum(lora_widths(lm, target_modules).values())
    if per_rank > n_parameters:
        warnings.warn(f"even a rank-1 LoRA trains {per_rank} parameters on {lm.name}, more than the {n_parameters} "
                      "to match: using rank 1", stacklevel=2)
        return 1
    return int(n_parameters) // per_rank


def _check_targets(lm: LanguageModel, target_modules) -> list[str]:
    """``target_modules`` as a list of module names (None: the default rule)."""
    if target_modules is None:
        return attention_query_value_modules(lm)
    if isinstance(target_modules, str) or not all(isinstance(name, str) and name for name in target_modules):
        raise ValueError(f"target_modules must be None or a list of module names, got {target_modules!r}")
    if not target_modules:
        raise ValueError("target_modules is empty: pass None (the attention's query/value projections) or module names")
    return list(target_modules)


@contextlib.contextmanager
def lora_installed(lm: LanguageModel, config, state: dict[str, torch.Tensor] | None = None,
                   seed: int = 0) -> Iterator:
    """Inject LoRA adapters described by the peft ``config`` into ``lm.model`` for the block;
    yield the peft model. ``state`` (peft's adapter state dict) sets their weights; without
    it they are peft's initialisation (``B = 0``, an exact no-op), seeded by ``seed``. Inside the
    block only the adapters require gradients (the model is :func:`frozen`); when it ends the
    adapters are removed (not merged) and the model's ``requires_grad`` flags restored, also on
    error."""
    peft = import_peft()
    wrapped = None
    with frozen(lm.model):
        try:
            with seeded(seed), warnings.catch_warnings():
                # transformers deprecates a property that peft still reads
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                wrapped = peft.get_peft_model(lm.model, copy.deepcopy(config))
            if state is not None:
                peft.set_peft_model_state_dict(wrapped, state)
            yield wrapped
        finally:
            if wrapped is not None:
                wrapped.unload()
            else:  # get_peft_model failed, maybe after injecting adapters
                _remove_adapters(lm.model)


def _remove_adapters(model: torch.nn.Module) -> None:
    """Put back the layer every peft adapter layer in ``model`` wraps and drop the
    ``peft_config`` attribute peft sets: what ``unload()`` does, for when peft failed before
    returning the model that has it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config


def adapter_state(wrapped) -> dict[str, torch.Tensor]:
    """Detached copies of the adapter weights of the peft model ``wrapped`` (peft's key names)."""
    from peft import get_peft_model_state_dict

    return {name: tensor.detach().clone() for name, tensor in get_peft_model_state_dict(wrapped).items()}


class LoRAFineTuner(BaseEstimator):
    """LoRA fine-tuning (peft) trained like the steerers: a baseline, not a steerer.

    Parameters
    ----------
    model : a float32 :class:`steerkit.lm.LanguageModel`; left unchanged (see the module docs).
    rank : LoRA rank ``r`` (``LoraConfig(r=...)``); :func:`rank_matching` finds the rank of a
        given parameter count.
    lora_alpha : peft's ``lora_alpha``; the update is scaled by ``lora_alpha / rank``.
        None (default) = ``rank``, an unscaled update ``B · A`` at any rank.
    target_modules : None (default): the query and value projections of every block's
        attention (:func:`attention_query_value_modules`); or a list of module names as peft
        matches them (``["q_proj", "v_proj", "o_proj"]``).
    learning_rate, warmup_ratio, weight_decay, gradient_accumulation, batch_size, epochs, seed :
        see :class:`~steerkit.training.loop.TrainingSettings` (the steerers' defaults);
        ``seed`` also seeds peft's initialisation of ``A``.
    metric : ``metric(answers, y) -> float`` used by :meth:`score`; None = exact match of
        stripped strings (:func:`~steerkit.training._base.exact_match`).
    progress : show progress bars (training shows the running loss).

    Attributes
    ----------
    adapter_config_ : the ``peft.LoraConfig`` trained (its ``target_modules`` resolved).
    adapter_state_ : ``{peft key: tensor}`` the trained ``lora_A`` / ``lora_B`` weights.
    history_ : :class:`~steerkit.training.loop.TrainingHistory`.
    n_trainable_parameters_ : number of trained scalars, ``rank · Σ (d_in + d_out)``.
    fit_seconds_ : wall time of training (s).
    """

    method = "lora"

    def __init__(self, model=None, *, rank: int = 8, lora_alpha: float | None = None, target_modules=None,
                 learning_rate: float = 9e-4, warmup_ratio: float = 0.03, weight_decay: float = 0.0,
                 gradient_accumulation: int = 2, batch_size: int = 8, epochs: int = 1, seed: int = 0,
                 metric=None, progress: bool = True):
        self.model = model
        self.rank = rank
        self.lora_alpha = lora_alpha
        self.target_modules = target_modules
        self.learning_rate = learning_rate
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.gradient_accumulation = gradient_accumulation
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.metric = metric
        self.progress = progress

    def _lora_config(self, lm: LanguageModel):
        """The ``peft.LoraConfig`` of the parameters (checked, one-line ValueErrors)."""
        peft = import_peft()
        if isinstance(self.rank, bool) or not isinstance(self.rank, numbers.Integral) or self.rank < 1:
            raise ValueError(f"rank must be a positive integer, got {self.rank!r}")
        alpha = self.rank if self.lora_alpha is None else self.lora_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"lora_alpha must be a positive number or None (= rank), got {self.lora_alpha!r}")
        targets = _check_targets(lm, self.target_modules)
        lora_widths(lm, targets)  # refuses names that match nothing or no 2-D weight
        return peft.LoraConfig(r=int(self.rank), lora_alpha=alpha, target_modules=targets, lora_dropout=0.0)

    def fit(self, X, y=None):
        """Train LoRA so the model answers the questions ``X`` with the completions ``y``
        (strings); returns self.

        Raises
        ------
        ValueError : bad parameters or data (one line each).
        TrainingDiverged : the loss became NaN or infinite; the estimator keeps its previous state.
        """
        lm = check_language_model(self.model, type(self).__name__, training=True)
        settings = TrainingSettings(**{name: getattr(self, name) for name in SETTINGS})
        config = self._lora_config(lm)
        if y is None:
            raise ValueError("LoRAFineTuner.fit needs y: the completion (a string) for every prompt in X")
        examples = list(zip(*encode_examples(lm, X, y)))
        started = time.perf_counter()
        with lora_installed(lm, config, seed=self.seed) as wrapped:
            parameters = [p for p in wrapped.parameters() if p.requires_grad]
            history = optimise(parameters, len(examples), lambda indices: completion_loss(lm, examples, indices),
                               settings, progress=self.progress, desc="training lora")
            state = adapter_state(wrapped)
        self._set_fitted(config, state, history, time.perf_counter() - started)
        return self

    def _set_fitted(self, config, state: dict[str, torch.Tensor], history: TrainingHistory, seconds) -> None:
        self.adapter_config_ = config
        self.adapter_state_ = state
        self.history_ = history
        self.n_trainable_parameters_ = sum(tensor.numel() for tensor in state.values())
        self.fit_seconds_ = seconds

    @contextlib.contextmanager
    def installed(self) -> Iterator:
        """The trained adapters injected into the model for the block (see :func:`lora_installed`);
        yields the peft model."""
        check_is_fitted(self, "adapter_state_")
        lm = check_language_model(self.model, type(self).__name__)
        with lora_installed(lm, self.adapter_config_, self.adapter_state_) as wrapped:
            yield wrapped

    def generate(self, X, *, max_new_tokens: int = 64, batch_size: int = 16, **kwargs) -> list[str]:
        """Answers of the fine-tuned model to the questions ``X`` (chat-formatted as in
        training), greedy by default; ``kwargs`` go to :meth:`~steerkit.lm.LanguageModel.generate`."""
        with self.installed():
            return self.model.generate(list(X), max_new_tokens=max_new_tokens, batch_size=batch_size,
                                       progress=self.progress, **kwargs)

    def score(self, X, y, *, max_new_tokens: int = 64) -> float:
        """The task metric of the answers to ``X`` against targets ``y``: ``metric(answers, y)``,
        by default exact match of stripped strings."""
        answers = self.generate(X, max_new_tokens=max_new_tokens)
        return float((self.metric or exact_match)(answers, list(y)))

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the directory ``path``: peft's ``adapter_model.safetensors`` and
        ``adapter_config.json`` (``PeftModel.save_pretrained``, loadable by peft itself) and
        steerkit's ``steerkit.json`` (method, model fields, parameters, training history).
        The directory appears complete or not at all; an existing ``path`` is replaced only when
        it is a saved LoRAFineTuner. Returns ``path``."""
        check_is_fitted(self, "adapter_state_")
        path = Path(path)
        if path.exists() and not (path / METADATA_FILE).is_file():
            raise ValueError(f"{path} exists and is not a saved LoRAFineTuner: choose a new directory")
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in UNSAVED_PARAMS}
        metadata = {
            "method": self.method,
            **model_fields(self.model),
            "target_modules": list(self.adapter_config_.target_modules),
            "rank": self.adapter_config_.r,
            "lora_alpha": self.adapter_config_.lora_alpha,
            "settings": {name: params[name] for name in SETTINGS},
            "params": params,
            "n_trainable_parameters": self.n_trainable_parameters_,
            "fit_seconds": self.fit_seconds_,
            "history": self.history_.to_dict(),
        }
        with atomic_directory(path) as tmp, self.installed() as wrapped:
            wrapped.save_pretrained(str(tmp))
            write_json(tmp / METADATA_FILE, metadata)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: LanguageModel, **params) -> "LoRAFineTuner":
        """Read a directory written by :meth:`save` onto ``model``, which must be the model it
        was trained on (name, hidden size, block count and vocabulary size are checked; the
        message names the first that differs). ``params`` set ``metric`` and ``progress``."""
        peft = import_peft()
        path = Path(path)
        metadata_path, weights_path = path / METADATA_FILE, path / "adapter_model.safetensors"
        for file in (metadata_path, weights_path, path / "adapter_config.json"):
            if not file.is_file():
                raise FileNotFoundError(f"no saved LoRAFineTuner file at {file}")
        metadata, method, saved, history = read_metadata(metadata_path, "a LoRAFineTuner file", REMEDY)
        if method != cls.method:
            raise ValueError(f"{metadata_path} holds a {method!r} model, not a LoRA adapter: load it with its own class")
        tuner = cls(model=model, **saved, **params)
        lm = check_language_model(model, cls.__name__)
        for field, value in model_fields(lm).items():
            if metadata.get(field) != value:
                raise ValueError(f"{path} was trained on {metadata.get('model')!r} with {field} {metadata.get(field)!r} "
                                 f"but {lm.name!r} has {value!r}: load it onto the model it was trained on")
        try:
            config = peft.LoraConfig.from_pretrained(str(path))
        except (ValueError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path / 'adapter_config.json'} is not a LoRA adapter config ({type(err).__name__}); "
                             f"{REMEDY}") from None
        arrays, _ = read_safetensors(weights_path, REMEDY)
        state = {name: torch.from_numpy(array).to(lm.device) for name, array in arrays.items()}
        with lora_installed(lm, config) as wrapped:
            expected = {name: tuple(tensor.shape) for name, tensor in adapter_state(wrapped).items()}
        if {name: tuple(tensor.shape) for name, tensor in state.items()} != expected:
            raise ValueError(f"{weights_path} does not hold the adapter weights adapter_config.json describes; {REMEDY}")
        tuner._set_fitted(config, state, history, metadata.get("fit_seconds"))
        return tuner
