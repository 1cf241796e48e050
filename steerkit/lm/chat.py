"""Turning (system instruction, user question) into the model's prompt text."""

from __future__ import annotations


def _messages(user: str, system: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": user}]


def format_chat(tokenizer, user: str, system: str | None = None) -> str:
    """Return the prompt string for one user turn, ending where the assistant answer starts.

    Uses the tokenizer's chat template. Templates that reject a system role get the system
    instruction prepended to the user turn. Tokenizers without a template (base models) get a
    plain ``"<system>\\n\\nQuestion: ...\\nAnswer:"`` layout.
    """
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(
                _messages(user, system), tokenize=False, add_generation_prompt=True
            )
        except Exception:  # jinja raises a TemplateError for unsupported roles
            if not system:
                raise
            merged = f"{system}\n\n{user}"
            return tokenizer.apply_chat_template(
                _messages(merged, None), tokenize=False, add_generation_prompt=True
            )
    prefix = f"{system}\n\n" if system else ""
    return f"{prefix}Question: {user}\nAnswer:"


def uses_chat_template(tokenizer) -> bool:
    """True when prompts carry their own special tokens (so the tokenizer must not add BOS)."""
    return bool(getattr(tokenizer, "chat_template", None))
