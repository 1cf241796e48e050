"""Turning (system instruction, user question), or a conversation, into the model's prompt text."""

from __future__ import annotations


def _messages(user: str, system: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": user}]


def format_chat(tokenizer, user: str, system: str | None = None) -> str:
    """Return the prompt string for one user turn, ending where the assistant answer starts.

    Uses the tokenizer's chat template (:func:`apply_template`: templates that reject a system
    role get the system instruction prepended to the user turn). Tokenizers without a template
    (base models) get a plain ``"<system>\\n\\nQuestion: ...\\nAnswer:"`` layout.
    """
    if getattr(tokenizer, "chat_template", None):
        return apply_template(tokenizer, _messages(user, system))
    prefix = f"{system}\n\n" if system else ""
    return f"{prefix}Question: {user}\nAnswer:"


def apply_template(tokenizer, messages: list[dict[str, str]]) -> str:
    """The tokenizer's chat template applied to ``messages`` (``{"role", "content"}`` dicts),
    ending where the assistant answer starts.

    When the template rejects them and they start with a system message followed by a user
    message, the system text is prepended to that user turn (``"<system>\\n\\n<user>"``) and
    the template applied again; otherwise its error (jinja's ``TemplateError``) is raised.
    """
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja raises a TemplateError for unsupported roles
        if [m["role"] for m in messages[:2]] != ["system", "user"]:
            raise
        system, user, *rest = messages
        merged = {"role": "user", "content": f"{system['content']}\n\n{user['content']}"}
        return tokenizer.apply_chat_template([merged, *rest], tokenize=False, add_generation_prompt=True)


def uses_chat_template(tokenizer) -> bool:
    """True when prompts carry their own special tokens (so the tokenizer must not add BOS)."""
    return bool(getattr(tokenizer, "chat_template", None))
