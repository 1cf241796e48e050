"""The shared training loop: schedule, accumulation, reproducibility, divergence, frozen model."""

import math

import numpy as np
import pytest
import torch

from steerkit.lm import Site
from steerkit.lm.interventions import LearnedVector
from steerkit.training import TrainingDiverged, TrainingSettings, frozen, optimise
from steerkit.training.data import encode_examples, steered_answer_log_probs
from steerkit.training.loop import linear_schedule, micro_batches
from steerkit.lm.scoring import AnswerBatch


def test_linear_schedule_warms_up_then_decays_to_zero():
    multiplier = linear_schedule(100, 0.03)  # 3 warm-up steps
    assert [multiplier(s) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 97 / 97])
    assert multiplier(50) == pytest.approx(50 / 97)
    assert multiplier(99) == pytest.approx(1 / 97)


def test_micro_batches_cover_every_example_once_per_epoch_and_are_seeded():
    settings = TrainingSettings(batch_size=3, epochs=2, seed=4)
    batches = micro_batches(10, settings)
    assert len(batches) == 8
    first, second = np.concatenate(batches[:4]), np.concatenate(batches[4:])
    assert sorted(first) == sorted(second) == list(range(10))
    assert not np.array_equal(first, second)  # reshuffled each epoch
    assert all(np.array_equal(a, b) for a, b in zip(batches, micro_batches(10, settings)))


def _quadratic_problem():
    """Minimise ||p - target||² over examples that each see one coordinate."""
    target = torch.arange(4, dtype=torch.float32)
    parameter = torch.nn.Parameter(torch.zeros(4))

    def batch_loss(indices):
        idx = torch.as_tensor(indices % 4)
        return ((parameter[idx] - target[idx]) ** 2).mean(), len(indices)

    return parameter, target, batch_loss


def test_optimise_matches_a_hand_written_adamw_loop():
    settings = TrainingSettings(learning_rate=0.1, warmup_ratio=0.25, batch_size=2, gradient_accumulation=2, epochs=3)
    parameter, target, batch_loss = _quadratic_problem()
    history = optimise([parameter], 8, batch_loss, settings, progress=False)

    reference = torch.nn.Parameter(torch.zeros(4))
    optimiser = torch.optim.AdamW([reference], lr=0.1, weight_decay=0.0)
    batches = micro_batches(8, settings)
    n_steps = math.ceil(len(batches) / 2)
    warmup = math.ceil(0.25 * n_steps)
    for step in range(n_steps):
        rate = 0.1 * ((step + 1) / warmup if step < warmup else (n_steps - step) / (n_steps - warmup))
        for group in optimiser.param_groups:
            group["lr"] = rate
        for indices in batches[2 * step : 2 * step + 2]:
            idx = torch.as_tensor(indices % 4)
            (((reference[idx] - target[idx]) ** 2).mean() / 2).backward()
        optimiser.step()
        optimiser.zero_grad()
    torch.testing.assert_close(parameter.detach(), reference.detach())
    assert len(history.loss) == n_steps == 6 and sum(history.tokens) == 8 * 3
    assert history.learning_rate[0] == pytest.approx(0.05)


def test_a_nan_loss_stops_training_naming_the_step_and_rate():
    parameter = torch.nn.Parameter(torch.zeros(2))
    calls = []

    def batch_loss(indices):
        calls.append(1)
        value = parameter.sum() * (float("nan") if len(calls) > 3 else 1.0)
        return value, 1

    with pytest.raises(TrainingDiverged, match=r"nan at step 2 of .*learning rate .*lower learning_rate"):
        optimise([parameter], 16, batch_loss, TrainingSettings(batch_size=2), progress=False)


@pytest.mark.parametrize("kwargs", [{"learning_rate": float("nan")}, {"batch_size": 0}, {"warmup_ratio": 1.0},
                                    {"epochs": 1.5}, {"weight_decay": -1.0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises((ValueError, TypeError), match=next(iter(kwargs))):
        TrainingSettings(**kwargs)


def test_nothing_to_train_is_refused():
    with pytest.raises(ValueError, match="nothing to train"):
        optimise([torch.nn.Parameter(torch.zeros(1), requires_grad=False)], 1, None, TrainingSettings(), progress=False)


def test_frozen_restores_the_flags_after_an_error(tiny_llama):
    before = [p.requires_grad for p in tiny_llama.model.parameters()]
    with pytest.raises(RuntimeError):
        with frozen(tiny_llama.model):
            assert not any(p.requires_grad for p in tiny_llama.model.parameters())
            raise RuntimeError
    assert [p.requires_grad for p in tiny_llama.model.parameters()] == before


def test_a_trained_vector_raises_the_likelihood_of_its_completions(tiny_llama):
    prompts, answers = encode_examples(tiny_llama, ["say yes", "say no"], ["yes yes", "no no"])
    vector = LearnedVector(tiny_llama.hidden_size, site=Site(1), positions="response")

    def batch_loss(indices):
        batch = AnswerBatch.of([prompts[i] for i in indices], [answers[i] for i in indices], tiny_llama.tokenizer.pad_token_id)
        return -(steered_answer_log_probs(tiny_llama, batch, [vector]) / batch.n_answer_tokens).mean(), int(batch.lengths.sum())

    for parameter in tiny_llama.model.parameters():  # the model is shared: forget other tests' gradients
        parameter.grad = None
    with frozen(tiny_llama.model):
        before = float(batch_loss(np.arange(2))[0].detach())
        history = optimise([vector.vector], 2, batch_loss, TrainingSettings(learning_rate=0.05, batch_size=2, epochs=20,
                                                                           gradient_accumulation=1), progress=False)
        after = float(batch_loss(np.arange(2))[0].detach())
    assert after < before - 0.1 and history.loss[-1] < history.loss[0]
    assert all(p.grad is None for p in tiny_llama.model.parameters())


def test_encode_examples_refuses_bad_data(tiny_llama):
    with pytest.raises(ValueError, match="completion 1 .* is empty"):
        encode_examples(tiny_llama, ["a", "b"], ["x", " "])
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        encode_examples(tiny_llama, ["a", "b"], ["x"])
    prompts, answers = encode_examples(tiny_llama, ["a"], ["x"])
    assert answers[0][-1] == tiny_llama.tokenizer.eos_token_id
