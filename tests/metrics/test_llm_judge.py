import string

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from steerkit.concepts import load_concept
from steerkit.lm.generation import generate
from steerkit.metrics import RESPONSE_COLUMNS, LLMJudge
from steerkit.metrics._forward import next_token_probabilities
from steerkit.metrics.llm_judge import DEFAULT_COHERENCE_PROMPT, whole_number_tokens
from steerkit.metrics.parsing import parse_score, weighted_scores


def test_prompts_and_construction(smollm):
    fields = {f for _, f, _, _ in string.Formatter().parse(DEFAULT_COHERENCE_PROMPT) if f}
    assert fields == {"question", "answer"}
    concept = load_concept("pirate")
    judge = LLMJudge.for_concept(concept, model=smollm, max_new_tokens=4)
    assert judge.concept_prompt == concept.eval_prompt and judge.max_new_tokens == 4
    filled = judge._filled(judge.concept_prompt, ["Q?"], ["a {brace} answer"])
    assert "a {brace} answer" in filled[0] and "Q?" in filled[0]
    with pytest.raises(ValueError, match="exactly one"):
        LLMJudge("{question}{answer}")
    with pytest.raises(ValueError, match="exactly one"):
        LLMJudge("{question}{answer}", model=smollm, client=object())


def test_digit_tokenizer_is_read_by_parsing(smollm):
    ids, values = whole_number_tokens(smollm.tokenizer)
    assert sorted(values.tolist()) == list(range(10))  # SmolLM2 splits numbers into digits
    assert LLMJudge("{question}{answer}", model=smollm)._score_tokens() is None


def test_next_token_probabilities_are_padding_invariant(tiny_llama):
    tokenizer = tiny_llama.tokenizer
    sequences = [tokenizer(t)["input_ids"] for t in ["Hello there, how are you doing today?", "Hi", "Rate it: 5"]]
    token_ids = np.array([15, 16, 17, 1000])
    batched = next_token_probabilities(tiny_llama, sequences, token_ids, batch_size=3)
    for row, ids in enumerate(sequences):
        with torch.inference_mode():
            logits = tiny_llama.model(torch.tensor([ids])).logits[0, -1]
        expected = torch.softmax(logits.double(), -1)[token_ids].numpy()
        np.testing.assert_allclose(batched[row], expected, rtol=1e-4, atol=1e-7)


def test_probability_rule_and_greedy_fallback(smollm, monkeypatch):
    judge = LLMJudge("Question: {question}\nAnswer: {answer}\nRate 0 to 9. One digit:", model=smollm,
                     min_probability_mass=0.0, max_new_tokens=4)
    ids, values = whole_number_tokens(smollm.tokenizer)
    monkeypatch.setattr(judge, "_score_tokens", lambda: (ids, values))  # pretend digits were whole numbers
    prompts = judge._filled(judge.concept_prompt, ["Why?", "How?"], ["Because.", "Like this."])
    chats = [smollm.chat_prompt(p) for p in prompts]
    sequences = [smollm.tokenizer(c)["input_ids"] for c in chats]
    expected = weighted_scores(next_token_probabilities(smollm, sequences, ids), values, 0.0)
    np.testing.assert_allclose(judge.rate(prompts), expected)
    judge.set_params(min_probability_mass=1.01)  # never enough mass: parse the greedy answer
    parsed = [parse_score(a) for a in generate(smollm, chats, max_new_tokens=4)]
    np.testing.assert_array_equal(judge.rate(prompts), parsed)


def test_embedded_judge_on_held_out_answers(smollm, held_out, record_property):
    """SmolLM2-135M is a weak judge: it often continues the answer instead of rating it.

    What holds: every score is NaN or within 0..100. Its AUC is recorded, not asserted.
    """
    _, test = held_out
    judge = LLMJudge.for_concept(load_concept("shakespearean"), model=smollm)
    scores = judge.concept_scores(test["question"].tolist(), test["response"].tolist())
    assert scores.shape == (len(test),)
    assert np.all(np.isnan(scores) | ((scores >= 0) & (scores <= 100)))
    assert np.isfinite(scores).any()
    auc = roc_auc_score(test["y"], np.where(np.isnan(scores), 50.0, scores))
    record_property("llm_judge_auc_nan_as_50", auc)
    record_property("llm_judge_missing_share", float(np.isnan(scores).mean()))


def test_score_responses_table(smollm):
    judge = LLMJudge("{question} {answer} Reply with the number 100.", model=smollm, coherence_prompt="{question} {answer} Say REFUSAL.")
    table = judge.score_responses(["Why?"], ["Because."])
    assert tuple(table.columns) == RESPONSE_COLUMNS and len(table) == 1
    concept, coherence, utility = table.loc[0, ["concept", "coherence", "utility"]]
    np.testing.assert_array_equal(utility, (concept + coherence) / 2)  # NaN when either is missing


def test_pickles_with_model_by_reference(smollm):
    import pickle

    judge = LLMJudge.for_concept(load_concept("pirate"), model=smollm)
    blob = pickle.dumps(judge)
    assert len(blob) < 20_000
    restored = pickle.loads(blob)
    assert restored.concept_prompt == judge.concept_prompt and restored.model.name == smollm.name
