"""``LanguageModel``: a causal LM, its tokenizer and its decoder blocks, in one handle."""

from __future__ import annotations

import warnings

from torch import nn

from steerkit.lm.blocks import find_decoder_blocks
from steerkit.lm.chat import format_chat, uses_chat_template
from steerkit.lm.sites import find_sublayer_path

INSTRUCTION_ROLES = ("system", "user")
_NO_TOKENIZER_LIMIT = 10**12  # transformers sets model_max_length to ~1e30 when a tokenizer has no limit


def prompt_label(question: str, system: str | None = None) -> str:
    """How error messages name a prompt: its question and instruction, 60 characters each."""
    label = f"question {question[:60]!r}"
    return f"{label} with instruction {system[:60]!r}" if system else label


class LanguageModel:
    """A transformers causal LM plus tokenizer, with the decoder blocks located.

    Layer convention used everywhere in steerkit: layer ``l`` (1..L) is the residual stream
    *after* decoder block ``l``; layer 0 is the embedding output (the input of block 1).
    Activation arrays therefore have ``n_blocks + 1`` entries on their layer axis (what an
    ``ActivationSet`` calls its ``n_layers``).

    Attributes
    ----------
    model : the ``PreTrainedModel`` (in eval mode).
    tokenizer : its tokenizer; a missing pad token is set to the EOS token.
    name : the name it was loaded by.
    block_path : dotted path of the decoder block list (``"model.layers"``).
    blocks : the ``nn.ModuleList`` of decoder blocks (length ``n_blocks``).
    sublayer_paths : ``{"attn": path or None, "mlp": path or None}``, the attention and MLP
        submodule paths inside a block when given (``attn_path=``, ``mlp_path=``); None uses
        the rule of :mod:`steerkit.lm.sites`.
    """

    def __init__(
        self, model: nn.Module, tokenizer, *, name: str = "model", block_path: str | None = None,
        load_spec: dict | None = None, attn_path: str | None = None, mlp_path: str | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.load_spec = load_spec
        self.block_path, self.blocks = find_decoder_blocks(model, block_path)
        self.sublayer_paths = {"attn": attn_path, "mlp": mlp_path}
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    # scikit-learn's clone() deep-copies non-estimator parameters; a model is shared instead.
    def __sklearn_clone__(self) -> "LanguageModel":
        return self

    # Pickling (joblib workers, saved estimators): a model loaded by name travels as its load
    # arguments and is loaded once per process on the other side; an in-memory model travels
    # as config + weights.
    def __getstate__(self) -> dict:
        if self.load_spec is not None:
            return {"load_spec": self.load_spec}
        return {
            "config": self.model.config,
            "weights": self.model.state_dict(),
            "tokenizer": self.tokenizer,
            "name": self.name,
            "block_path": self.block_path,
            "sublayer_paths": self.sublayer_paths,
        }

    def __setstate__(self, state: dict) -> None:
        if "load_spec" in state:
            from steerkit.lm.loading import load_model_cached

            self.__dict__.update(load_model_cached(**state["load_spec"]).__dict__)
            return
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(state["config"])
        model.load_state_dict(state["weights"])
        model.eval()
        paths = state.get("sublayer_paths", {})
        self.__init__(model, state["tokenizer"], name=state["name"], block_path=state["block_path"],
                      attn_path=paths.get("attn"), mlp_path=paths.get("mlp"))

    def __repr__(self) -> str:
        return (
            f"LanguageModel({self.name!r}, blocks={self.n_blocks}, hidden_size={self.hidden_size}, "
            f"dtype={self.dtype}, device={self.device})"
        )

    @property
    def n_blocks(self) -> int:
        """Number of decoder blocks ``L`` (activation arrays hold ``L + 1`` layers: 0..L)."""
        return len(self.blocks)

    @property
    def n_layers(self) -> int:
        """Deprecated alias of :attr:`n_blocks` (a DeprecationWarning; removed in the next release)."""
        warnings.warn("LanguageModel.n_layers is deprecated and will be removed in the next release: use n_blocks "
                      "(the number of decoder blocks L; activation arrays hold L + 1 layers)",
                      DeprecationWarning, stacklevel=2)
        return self.n_blocks

    def site_module(self, site) -> nn.Module:
        """The module whose output is ``site`` (layer >= 1): block ``l``, or its attention or
        MLP submodule (found by the rule of :mod:`steerkit.lm.sites`)."""
        block = self.blocks[site.layer - 1]
        if site.component == "residual":
            return block
        return block.get_submodule(find_sublayer_path(block, site.component, self.sublayer_paths[site.component]))

    @property
    def hidden_size(self) -> int:
        """Width ``d`` of the residual stream."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(config.hidden_size)

    @property
    def context_length(self) -> int | None:
        """Most tokens (prompt + answer) the model reads: ``max_position_embeddings`` of its
        config, else its tokenizer's ``model_max_length``; None when neither sets a limit."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        limit = getattr(config, "max_position_embeddings", None)
        if limit is None and self.tokenizer.model_max_length < _NO_TOKENIZER_LIMIT:
            limit = self.tokenizer.model_max_length
        return None if limit is None else int(limit)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    @property
    def adds_special_tokens(self) -> bool:
        """Whether tokenising a prompt must add BOS (False when a chat template adds it)."""
        return not uses_chat_template(self.tokenizer)

    def chat_prompt(self, question: str, system: str | None = None, *, role: str = "system") -> str:
        """Prompt text for ``question`` with instruction ``system``.

        ``role="system"`` sends the instruction as the system prompt (GRACE, PersonaVectors);
        ``role="user"`` puts it before the question in the user turn, which small models follow
        far more reliably.
        """
        if role not in INSTRUCTION_ROLES:
            raise ValueError(f"role must be one of {INSTRUCTION_ROLES}, got {role!r}")
        if role == "user" and system:
            return format_chat(self.tokenizer, f"{system}\n\n{question}")
        return format_chat(self.tokenizer, question, system)

    def check_prompts(self, questions, system=None, *, role: str = "system", max_new_tokens: int = 0) -> None:
        """Raise a ValueError naming the first question (and instruction) whose prompt plus
        ``max_new_tokens`` does not fit :attr:`context_length`; arguments as in :meth:`generate`,
        which makes the same check. Use it to refuse a job before any generation starts."""
        from steerkit.lm.generation import check_context

        systems = system if isinstance(system, (list, tuple)) else [system] * len(questions)
        lengths = [len(self.tokenizer(self.chat_prompt(q, s, role=role), add_special_tokens=self.adds_special_tokens)
                       ["input_ids"]) for q, s in zip(questions, systems)]
        check_context(self, lengths, [prompt_label(q, s) for q, s in zip(questions, systems)],
                      max_new_tokens=max_new_tokens)

    def generate(self, questions, system=None, *, role: str = "system", **kwargs) -> list[str]:
        """Greedy answers to ``questions`` under instruction(s) ``system`` placed by ``role``
        (see :meth:`chat_prompt` and :func:`steerkit.lm.generation.generate`)."""
        from steerkit.lm.generation import generate

        systems = system if isinstance(system, (list, tuple)) else [system] * len(questions)
        prompts = [self.chat_prompt(q, s, role=role) for q, s in zip(questions, systems)]
        return generate(self, prompts, labels=[prompt_label(q, s) for q, s in zip(questions, systems)], **kwargs)
