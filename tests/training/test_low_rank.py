"""LowRankSteerer: no-op at initialisation, training, reproducibility, frozen model, sites, errors."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from steerkit.lm import LanguageModel, Site
from steerkit.lm.hooks import intervene, record_activations
from steerkit.lm.interventions import LearnedVector, LowRank
from steerkit.training import LowRankSteerer, TrainingDiverged
from steerkit.training import low_rank
from steerkit.training._base import exact_match
from tests.conftest import build_tiny, tiny_config

QUESTIONS = ["What is the capital of France?", "Name a colour.", "Count to three, please!", "Who wrote Hamlet? 123"]
COMPLETIONS = ["one", "two", "three", "four"]
QUICK = dict(rank=4, batch_size=2, gradient_accumulation=1, epochs=1, progress=False)


@pytest.fixture(scope="module")
def sharp_llama(tokenizer):
    """A tiny Llama whose random weights are large enough (initializer_range 0.3) for its logits
    to be far from uniform, so a memorisation task can be learnt in a few steps."""
    from transformers import AutoModelForCausalLM

    config = tiny_config("llama", len(tokenizer))
    config.initializer_range = 0.3
    torch.manual_seed(0)
    return LanguageModel(AutoModelForCausalLM.from_config(config).eval(), tokenizer, name="tiny-sharp-llama")


def _parameters(steerer):
    return [p.detach().clone() for i in steerer.interventions() for p in i.parameters()]


VARIANTS = [dict(variant="adapter"), dict(variant="adapter", positions="last"), dict(variant="adapter", sites="submodules"),
            dict(variant="adapter", activation="linear"), dict(variant="vector"), dict(variant="vector", positions="last")]


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(map(str, o.values())))
def test_an_untrained_steerer_is_an_exact_no_op(tiny_llama, options):
    interventions = LowRankSteerer(tiny_llama, **options)._fresh_interventions(tiny_llama)
    assert len(interventions) == tiny_llama.n_blocks * (2 if options.get("sites") == "submodules" else 1)
    for intervention in interventions:
        if isinstance(intervention, LowRank):
            assert torch.count_nonzero(intervention.W_up) == 0 and torch.count_nonzero(intervention.W_down) > 0
        else:
            assert isinstance(intervention, LearnedVector) and torch.count_nonzero(intervention.vector) == 0
    ids = torch.tensor([[5, 17, 230, 41, 9]])
    with torch.no_grad():
        plain = tiny_llama.model(input_ids=ids).logits
        with intervene(tiny_llama, interventions):
            steered = tiny_llama.model(input_ids=ids).logits
    assert torch.equal(plain, steered)
    prompts = ["Tell me a story", "Hi"]
    assert (tiny_llama.generate(prompts, max_new_tokens=6, interventions=[interventions] * 2)
            == tiny_llama.generate(prompts, max_new_tokens=6))


def test_training_memorises_four_completions(sharp_llama):
    assert exact_match(sharp_llama.generate(QUESTIONS, max_new_tokens=4), COMPLETIONS) == 0
    steerer = LowRankSteerer(sharp_llama, rank=8, learning_rate=5e-2, epochs=12, batch_size=4, gradient_accumulation=1,
                             progress=False).fit(QUESTIONS, COMPLETIONS)
    assert steerer.generate(QUESTIONS, max_new_tokens=4) == COMPLETIONS
    assert steerer.score(QUESTIONS, COMPLETIONS, max_new_tokens=4) == 1.0
    assert steerer.history_.loss[-1] < steerer.history_.loss[0] / 5
    assert steerer.n_trainable_parameters_ == sharp_llama.n_blocks * 2 * 8 * sharp_llama.hidden_size
    assert len(steerer.history_.loss) == 12 and steerer.fit_seconds_ > 0


def test_score_uses_the_given_metric(tiny_llama):
    steerer = LowRankSteerer(tiny_llama, **QUICK, metric=lambda answers, y: float(len(answers) * 10 + len(y)))
    steerer.fit(QUESTIONS, COMPLETIONS)
    assert steerer.score(QUESTIONS[:2], COMPLETIONS[:2], max_new_tokens=2) == 22.0


def test_the_same_seed_gives_identical_parameters_and_another_seed_different_ones(tiny_llama):
    first = _parameters(LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS, COMPLETIONS))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    again = _parameters(LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS, COMPLETIONS))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    other = _parameters(LowRankSteerer(tiny_llama, **{**QUICK, "seed": 1}).fit(QUESTIONS, COMPLETIONS))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not any(torch.equal(a, b) for a, b in zip(first, other))
    assert any(torch.count_nonzero(p) for p in first[1::2])  # W_up trained away from zero


def test_the_model_is_unchanged_and_gets_no_gradients(tiny_llama):
    before = {name: p.detach().clone() for name, p in tiny_llama.model.named_parameters()}
    flags = [p.requires_grad for p in tiny_llama.model.parameters()]
    LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS, COMPLETIONS)
    for name, p in tiny_llama.model.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None
    assert [p.requires_grad for p in tiny_llama.model.parameters()] == flags


def test_submodules_steer_the_attention_and_mlp_outputs(tiny_llama):
    steerer = LowRankSteerer(tiny_llama, **{**QUICK, "variant": "vector"}, sites="submodules")
    interventions = steerer.fit(QUESTIONS, COMPLETIONS).interventions()
    assert [i.site for i in interventions] == [Site(layer, c) for layer in (1, 2, 3) for c in ("attn", "mlp")]
    ids = torch.tensor([[5, 17, 230]])
    mlp = Site(2, "mlp")
    with torch.no_grad(), record_activations(tiny_llama, [mlp]) as plain:
        tiny_llama.model(input_ids=ids)
    only_mlp = [i for i in interventions if i.site == mlp]
    with torch.no_grad(), intervene(tiny_llama, only_mlp), record_activations(tiny_llama, [mlp]) as steered:
        tiny_llama.model(input_ids=ids)
    torch.testing.assert_close(steered[mlp][0] - plain[mlp][0], only_mlp[0].vector.expand(1, 3, -1))


def test_last_positions_steer_what_generation_steers(tiny_llama):
    steerer = LowRankSteerer(tiny_llama, **{**QUICK, "positions": "last"}).fit(QUESTIONS, COMPLETIONS)
    assert {i.positions for i in steerer.interventions()} == {"last"}
    response = [LowRank(tiny_llama.hidden_size, 4, site=i.site, positions="response") for i in steerer.interventions()]
    for new, trained in zip(response, steerer.interventions()):
        new.load_state_dict(trained.state_dict())
    assert steerer.generate(QUESTIONS, max_new_tokens=5) == tiny_llama.generate(
        QUESTIONS, max_new_tokens=5, interventions=[response] * len(QUESTIONS))


def test_a_nan_loss_stops_training_and_keeps_the_previous_fit(tiny_llama, monkeypatch):
    steerer = LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS, COMPLETIONS)
    trained = _parameters(steerer)
    monkeypatch.setattr(low_rank, "completion_loss", lambda *args: (torch.tensor(float("nan")), 1))
    with pytest.raises(TrainingDiverged, match="nan at step 1 .*lower learning_rate"):
        steerer.fit(QUESTIONS, COMPLETIONS)
    assert all(torch.equal(a, b) for a, b in zip(trained, _parameters(steerer)))
    with pytest.raises(TrainingDiverged):
        LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS, COMPLETIONS)


@pytest.mark.parametrize("options, message", [
    (dict(rank=0), "rank must be an integer in 1..64"),
    (dict(rank=65), "rank must be an integer in 1..64"),
    (dict(rank=2.5), "rank must be an integer"),
    (dict(activation="swish"), "activation must be one of"),
    (dict(variant="lora"), "variant must be one of"),
    (dict(positions="prompt"), "positions must be one of"),
    (dict(sites="heads"), "sites must be one of"),
    (dict(sites=[]), "sites must be one of"),
    (dict(sites=[7]), "layer 7 is out of range"),
    (dict(learning_rate=2.0), "learning_rate"),
])
def test_bad_parameters_are_one_line_errors(tiny_llama, options, message):
    with pytest.raises(ValueError, match=message) as error:
        LowRankSteerer(tiny_llama, **{**QUICK, **options}).fit(QUESTIONS, COMPLETIONS)
    assert "\n" not in str(error.value)


def test_bad_data_and_models_are_one_line_errors(tiny_llama, tokenizer):
    with pytest.raises(ValueError, match="needs y"):
        LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS)
    with pytest.raises(ValueError, match="4 prompts but 3 completions"):
        LowRankSteerer(tiny_llama, **QUICK).fit(QUESTIONS, COMPLETIONS[:3])
    with pytest.raises(ValueError, match="needs model=a steerkit LanguageModel"):
        LowRankSteerer(None, **QUICK).fit(QUESTIONS, COMPLETIONS)
    half = build_tiny("llama", tokenizer)
    half.model.to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"torch.bfloat16 .*load_model\(\.\.\., dtype='float32'\)"):
        LowRankSteerer(half, **QUICK).fit(QUESTIONS, COMPLETIONS)
    with pytest.raises(NotFittedError):
        LowRankSteerer(tiny_llama).generate(QUESTIONS)


def test_scikit_learn_clone_and_params(tiny_llama):
    steerer = LowRankSteerer(tiny_llama, **QUICK, sites=[Site(1), 2]).fit(QUESTIONS, COMPLETIONS)
    copy = clone(steerer)
    assert copy.model is tiny_llama and not hasattr(copy, "interventions_")
    params = copy.get_params()
    assert params["rank"] == 4 and params["sites"] == [Site(1), 2] and params["learning_rate"] == 9e-4
    assert copy.set_params(rank=2, epochs=3).get_params()["rank"] == 2
    assert [i.site for i in steerer.interventions()] == [Site(1), Site(2)]
    assert steerer._settings().batch_size == 2 and steerer._settings().seed == 0
    np.testing.assert_equal(sorted(params), sorted(LowRankSteerer().get_params()))
