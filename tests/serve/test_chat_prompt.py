"""chat_prompt formats a request's messages as generation does: a chat template that rejects a
system role gets the system text merged into the first user turn, as ``format_chat`` does."""

import pytest

from steerkit.lm.chat import format_chat
from steerkit.serve.app import APIError, Message, chat_prompt

NO_SYSTEM = ("{% for message in messages %}{% if message['role'] == 'system' %}"
             "{{ raise_exception('System role not supported') }}{% endif %}"
             "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture
def no_system(tokenizer, monkeypatch):
    """The embedded tokenizer with a chat template that raises on a system message."""
    monkeypatch.setattr(tokenizer, "chat_template", NO_SYSTEM)
    return tokenizer


def turns(*pairs):
    return [Message(role=role, content=content) for role, content in pairs]


def test_a_rejected_system_role_is_merged_into_the_user_turn_as_in_generation(no_system):
    prompt = chat_prompt(no_system, turns(("system", "Talk like a pirate."), ("user", "Hi")))
    assert prompt == format_chat(no_system, "Hi", "Talk like a pirate.")
    assert prompt == "<|im_start|>user\nTalk like a pirate.\n\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_a_conversation_keeps_its_later_turns(no_system):
    prompt = chat_prompt(no_system, turns(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."),
                                          ("user", "Bye")))
    assert prompt == ("<|im_start|>user\nBe brief.\n\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                      "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")


def test_messages_the_template_rejects_otherwise_are_a_400(no_system):
    with pytest.raises(APIError) as raised:
        chat_prompt(no_system, turns(("system", "Be brief."), ("system", "Really."), ("user", "Hi")))
    assert raised.value.status == 400 and raised.value.param == "messages"
