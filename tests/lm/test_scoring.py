"""Teacher-forced answer log-probabilities: values, padding invariance, gradients."""

import numpy as np
import pytest
import torch

from steerkit.lm import Site
from steerkit.lm.hooks import intervene
from steerkit.lm.interventions import AddVector, LearnedVector, Window
from steerkit.lm.scoring import AnswerBatch, answer_log_probs, teacher_forced

PROMPTS = [[5, 9, 13, 2], [7, 3], [11, 4, 8, 6, 1, 10]]
ANSWERS = [[21, 22, 23], [30, 31, 32, 33, 34], [40]]


def _independent(lm, prompt, answer) -> float:
    """Sum of log p(answer tokens) from one unpadded full forward pass and log_softmax."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        log_probs = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), dim=-1)
    return float(sum(log_probs[len(prompt) - 1 + j, token] for j, token in enumerate(answer)))


def test_answer_log_probs_match_unpadded_passes(tiny_llama):
    batch = AnswerBatch.of(PROMPTS, ANSWERS, tiny_llama.tokenizer.pad_token_id)
    with torch.no_grad():
        got = answer_log_probs(tiny_llama, batch).numpy()
    expected = [_independent(tiny_llama, p, a) for p, a in zip(PROMPTS, ANSWERS)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert batch.n_answer_tokens.tolist() == [3, 5, 1]


def test_predicting_positions_are_the_last_prompt_token_to_the_second_last_answer_token(tiny_llama):
    batch = AnswerBatch.of([[1, 2, 3]], [[4, 5]], 0)
    assert batch.predicting_positions()[0].tolist() == [False, False, True, True, False]


def test_gradients_reach_a_steering_vector(tiny_llama):
    intervention = LearnedVector(tiny_llama.hidden_size, site=Site(1), positions="all")
    batch = AnswerBatch.of(PROMPTS, ANSWERS, tiny_llama.tokenizer.pad_token_id)
    with intervene(tiny_llama, [intervention]):
        (gradient,) = torch.autograd.grad(answer_log_probs(tiny_llama, batch).sum(), [intervention.vector])
    assert float(gradient.abs().sum()) > 0


def test_teacher_forced_masks_are_the_positions_steered_while_generating(tiny_llama):
    batch = AnswerBatch.of([[1, 2, 3], [4]], [[5, 6], [7, 8, 9]], 0)
    originals = [LearnedVector(tiny_llama.hidden_size, site=Site(1), positions=p) for p in ["all", "response", "last", "prompt"]]
    forced = teacher_forced(originals,
                            batch.prompt_lengths, batch.lengths, batch.input_ids.shape[1])
    assert forced[0].positions == "all"
    response = [[False, False, True, True, True], [True, True, True, True, False]]
    assert forced[1].positions.tolist() == forced[2].positions.tolist() == response
    assert forced[3].positions.tolist() == [[True, True, True, False, False], [True, False, False, False, False]]
    assert forced[1].vector is originals[1].vector and originals[1].positions == "response"  # shared, not copied


GENERATION_PROMPTS, N_NEW = [[5, 9, 13, 2, 17], [7, 3, 11]], 6


def _greedy(lm, prompt: list[int], steering=()) -> list[int]:
    """The ``N_NEW`` tokens greedy generation (with a key/value cache) answers ``prompt`` alone with."""
    ids = torch.tensor([prompt])
    with torch.no_grad(), intervene(lm, steering):
        output = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=N_NEW,
                                   min_new_tokens=N_NEW, do_sample=False, pad_token_id=0)
    return output[0, len(prompt):].tolist()


@pytest.fixture(scope="module")
def unsteered_answers(tiny_llama):
    return [_greedy(tiny_llama, prompt) for prompt in GENERATION_PROMPTS]


@pytest.mark.parametrize("positions", ["all", "prompt", "response", "last", "first", Window(2, 7)],
                         ids=["all", "prompt", "response", "last", "first", "window"])
def test_teacher_forcing_a_steered_greedy_answer_predicts_every_one_of_its_tokens(tiny_llama, unsteered_answers,
                                                                                  positions):
    """The contract of teacher_forced: one forward pass over prompt + generated answer, steered
    by the teacher-forced copies, gives the logits each answer token was generated from."""
    steering = [AddVector(np.random.default_rng(0).normal(size=tiny_llama.hidden_size), site=Site(1),
                          coefficient=4.0, positions=positions)]
    answers = [_greedy(tiny_llama, prompt, steering) for prompt in GENERATION_PROMPTS]
    assert answers != unsteered_answers  # the steering matters
    batch = AnswerBatch.of(GENERATION_PROMPTS, answers, 0)  # right-padded: the shorter row ends in padding
    forced = teacher_forced(steering, batch.prompt_lengths, batch.lengths, batch.input_ids.shape[1])
    with torch.no_grad(), intervene(tiny_llama, forced):
        predicted = tiny_llama.model(input_ids=batch.input_ids, attention_mask=batch.attention).logits.argmax(-1)
    for row, (prompt, answer) in enumerate(zip(GENERATION_PROMPTS, answers)):
        assert predicted[row, len(prompt) - 1 : len(prompt) + N_NEW - 1].tolist() == answer
