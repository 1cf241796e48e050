"""Texts longer than the model's context are refused, naming the text, before any forward pass."""

from types import SimpleNamespace

import pytest

from steerkit.activations import extract_activations, generate_contrastive
from steerkit.concepts import load_concept
from steerkit.metrics import LikelihoodCoherence

CONTEXT = 60  # tokens; the pirate chat prompts are 40-60 tokens, their instructed ones longer


@pytest.fixture
def short_context(tiny_llama, monkeypatch):
    """``tiny_llama`` with a context of ``CONTEXT`` tokens, whose model must not be run."""
    def never(*args, **kwargs):
        raise AssertionError("the model ran on a text that does not fit its context")

    monkeypatch.setattr(tiny_llama.model.config, "max_position_embeddings", CONTEXT)
    monkeypatch.setattr(tiny_llama.model, "generate", never)
    monkeypatch.setattr(tiny_llama.model, "forward", never)
    monkeypatch.setattr(tiny_llama.model.base_model, "forward", never)  # extraction runs the decoder alone
    return tiny_llama


def test_context_length_reads_the_config_then_a_sensible_tokenizer_limit(tiny_llama, monkeypatch):
    assert tiny_llama.context_length == tiny_llama.model.config.max_position_embeddings
    monkeypatch.setattr(tiny_llama.model, "config", SimpleNamespace())  # a config without the field
    monkeypatch.setattr(tiny_llama.tokenizer, "model_max_length", 512)
    assert tiny_llama.context_length == 512
    monkeypatch.setattr(tiny_llama.tokenizer, "model_max_length", int(1e30))  # transformers' "no limit"
    assert tiny_llama.context_length is None


def test_generation_refuses_a_question_that_leaves_no_room_for_the_answer(short_context):
    long_question = "Describe, in great detail and with many examples, " + "the sea " * 40
    with pytest.raises(ValueError, match=r"question 'Describe, in great detail and with many examples, the sea th'.* tokens"
                                         r".*max_new_tokens=4.*context of 60 tokens"):
        short_context.generate(["Hi?", long_question], max_new_tokens=4)


def test_generation_counts_max_new_tokens_against_the_context(short_context):
    prompt_tokens = len(short_context.tokenizer(short_context.chat_prompt("Hi?"))["input_ids"])
    with pytest.raises(ValueError, match=f"{prompt_tokens} tokens \\+ max_new_tokens={CONTEXT}"):
        short_context.generate(["Hi?"], max_new_tokens=CONTEXT)


def test_contrastive_generation_names_question_and_instruction_before_generating(short_context):
    with pytest.raises(ValueError, match=r"question 'What should I pack for a weekend trip\?' with instruction "
                                         r"\"Speak like a pirate in every sentence"):
        generate_contrastive(short_context, load_concept("pirate"), n_questions=2, max_new_tokens=8, role="user",
                             progress=False)


def test_extraction_refuses_a_text_longer_than_the_context(short_context):
    prompt = short_context.chat_prompt("Hi?")
    with pytest.raises(ValueError, match=r"text 1 \(response 'Ahoy Ahoy Ahoy.*\) is \d+ tokens.*context of 60"):
        extract_activations(short_context, [prompt, prompt], ["Ahoy.", "Ahoy " * 80])


def test_coherence_scoring_refuses_a_response_longer_than_the_context(short_context):
    with pytest.raises(ValueError, match=r"question 'Hi\?' with response 'Ahoy Ahoy.*context of 60"):
        LikelihoodCoherence(short_context).score(["Hi?"], ["Ahoy " * 80])
