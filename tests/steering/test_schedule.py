import json
import re

import numpy as np
import pytest
import torch

from steerkit.lm import Site, generate, intervene, record_activations
from steerkit.lm.interventions import AddVector
from steerkit.steering.composition import compose
from steerkit.steering.schedule import (
    AfterTokens,
    Phase,
    ProjectionCrosses,
    SteeringSchedule,
    TextMatches,
    generate_scheduled,
)
from steerkit.steering.schedule_file import load_schedule

QUESTIONS = ["What is a cloud?", "Tell me a long story about a dog who lived by the sea.", "Why?"]
N_NEW = 12


def _vector(lm, seed):
    return np.random.default_rng(seed).normal(scale=4.0, size=lm.hidden_size).astype(np.float32)


def _prompts(lm):
    return [lm.chat_prompt(q) for q in QUESTIONS]


def _manual_greedy(lm, prompt, phase_of_pass, n_new=N_NEW):
    """Greedy tokens of one prompt from a hand-written KV-cache loop: pass ``p`` is steered by
    the interventions ``phase_of_pass(p, tokens so far)``."""
    ids = torch.tensor([lm.tokenizer(prompt, add_special_tokens=lm.adds_special_tokens)["input_ids"]])
    tokens, cache, fed = [], None, ids
    with torch.inference_mode(), intervene(lm) as installed:
        for p in range(n_new):
            installed.set_rows([phase_of_pass(p, tokens)])
            out = lm.model(input_ids=fed, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            tokens.append(int(out.logits[0, -1].argmax()))
            fed = torch.tensor([[tokens[-1]]])
    return tokens


def _answer_tokens(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_after_tokens_switches_after_exactly_n_predicted_tokens(tiny_llama):
    lm = tiny_llama
    a, b = AddVector(_vector(lm, 0), site=2), AddVector(_vector(lm, 1), site=1)
    schedule = SteeringSchedule([Phase([a], until=AfterTokens(4)), Phase([b])])
    answers, switches = generate_scheduled(lm, _prompts(lm)[:1], schedule, max_new_tokens=N_NEW, return_switches=True)
    expected = _manual_greedy(lm, _prompts(lm)[0], lambda p, tokens: [a] if p < 4 else [b])
    assert answers[0] == lm.tokenizer.decode(expected, skip_special_tokens=True).strip()
    assert switches == [[4]]
    only_a = generate(lm, _prompts(lm)[:1], max_new_tokens=N_NEW, interventions=[[a]])
    assert answers[0] != only_a[0]  # the switch changed the answer


def test_text_match_switches_on_the_text_the_phase_produced(tiny_llama):
    lm = tiny_llama
    a = AddVector(_vector(lm, 2), site=2)
    unsteered = _manual_greedy(lm, _prompts(lm)[0], lambda p, tokens: None)
    word = re.search(r"\w{2,}", lm.tokenizer.decode(unsteered[3:6])).group(0)  # appears in tokens 3..5
    schedule = SteeringSchedule([Phase([], until=TextMatches(re.escape(word))), Phase([a])])
    answers, switches = generate_scheduled(lm, _prompts(lm)[:1], schedule, max_new_tokens=N_NEW, return_switches=True)

    def phase(p, tokens):
        return [a] if any(re.search(re.escape(word), lm.tokenizer.decode(tokens[:k]), re.I) for k in range(p + 1)) \
            else None

    expected = _manual_greedy(lm, _prompts(lm)[0], phase)
    assert answers[0] == lm.tokenizer.decode(expected, skip_special_tokens=True).strip()
    assert 1 <= switches[0][0] <= 6


def test_monitor_switches_the_pass_after_its_projection_crosses(tiny_llama):
    lm, site = tiny_llama, Site(2)
    direction = _vector(lm, 3)
    unit = direction / np.linalg.norm(direction)
    with record_activations(lm, [site]) as records:
        generate(lm, _prompts(lm)[:1], max_new_tokens=N_NEW)
    projections = np.array([float(h[0, -1] @ torch.as_tensor(unit)) for h in records[site]])
    k = next(k for k in range(1, len(projections)) if projections[k] > projections[:k].max())
    threshold = (projections[k] + projections[:k].max()) / 2
    b = AddVector(_vector(lm, 4), site=1)
    schedule = SteeringSchedule([Phase([], until=ProjectionCrosses(direction, site, threshold)), Phase([b])])
    answers, switches = generate_scheduled(lm, _prompts(lm)[:1], schedule, max_new_tokens=N_NEW, return_switches=True)
    assert switches == [[k + 1]]
    expected = _manual_greedy(lm, _prompts(lm)[0], lambda p, tokens: [b] if p > k else None)
    assert answers[0] == lm.tokenizer.decode(expected, skip_special_tokens=True).strip()


def test_each_row_of_a_batch_equals_the_row_generated_alone(tiny_llama):
    lm = tiny_llama
    a, b = AddVector(_vector(lm, 5), site=2), AddVector(_vector(lm, 6), site=Site(1, "mlp"))
    schedule = SteeringSchedule([  # the threshold sits inside the range of this model's readings, so rows part
        Phase([], until=TextMatches("s")),
        Phase([b], until=ProjectionCrosses(_vector(lm, 7), 2, -5.8, above=False)),
        Phase([a, b], until=AfterTokens(2)),
        Phase([a]),
    ])
    prompts = _prompts(lm)
    together, switches = generate_scheduled(lm, prompts, schedule, max_new_tokens=N_NEW, batch_size=3,
                                            return_switches=True)
    for i, prompt in enumerate(prompts):
        alone, alone_switches = generate_scheduled(lm, [prompt], schedule, max_new_tokens=N_NEW, return_switches=True)
        assert together[i] == alone[0]
        assert switches[i] == alone_switches[0]
    assert len({tuple(s) for s in switches}) > 1  # the rows really were at different phases


def test_single_phase_schedule_equals_plain_per_row_generation(tiny_llama):
    lm = tiny_llama
    a = AddVector(_vector(lm, 8), site=2)
    scheduled = generate_scheduled(lm, _prompts(lm), SteeringSchedule([Phase([a])]), max_new_tokens=N_NEW)
    assert scheduled == generate(lm, _prompts(lm), max_new_tokens=N_NEW, interventions=[[a]] * len(QUESTIONS))


def test_compose_adds_the_weighted_sum_like_separate_vectors(tiny_llama):
    lm = tiny_llama
    v1, v2 = _vector(lm, 9), _vector(lm, 10)
    composed = compose([v1, v2], [0.5, -2.0], site=2)
    np.testing.assert_allclose(composed.vector.numpy(), 0.5 * v1 - 2.0 * v2, rtol=1e-6)
    separate = [AddVector(v1, site=2, coefficient=0.5), AddVector(v2, site=2, coefficient=-2.0)]
    ids = torch.tensor([lm.tokenizer(_prompts(lm)[0])["input_ids"]])
    with torch.inference_mode():
        with intervene(lm, [composed]):
            one = lm.model(ids).logits
        with intervene(lm, separate):
            two = lm.model(ids).logits
    torch.testing.assert_close(one, two, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("phases, message", [
    ([], "at least one phase"),
    ([Phase([]), Phase([])], "has no until condition"),
    ([Phase([], until=AfterTokens(2))], "no phase follows"),
])
def test_invalid_schedules_are_refused(phases, message):
    with pytest.raises(ValueError, match=message):
        SteeringSchedule(phases)


def test_invalid_conditions_are_refused():
    with pytest.raises(ValueError, match="n >= 1"):
        AfterTokens(0)
    with pytest.raises(ValueError, match="not a regular expression"):
        TextMatches("(")
    with pytest.raises(ValueError, match="one weight per vector"):
        compose(np.ones((2, 4)), [1.0], site=1)


# -- schedule files and `steerkit generate --schedule` ---------------------------------------------

def _schedule_file(tmp_path, lm, phases):
    from steerkit.estimators.files import save_vector

    for seed in (11, 12):
        save_vector(tmp_path / f"v{seed}.safetensors", _vector(lm, seed), layer=2, coefficient=1.5, model=lm.name)
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"phases": phases}))
    return path


GOOD_PHASES = [
    {"name": "first", "vectors": [{"path": "v11.safetensors"}], "until": {"after_tokens": 3}},
    {"name": "second", "vectors": [{"path": "v12.safetensors", "layer": 1, "coefficient": -2}],
     "until": {"projection": {"path": "v11.safetensors", "threshold": 0.0, "above": False}}},
    {"name": "free"},
]


def test_a_schedule_file_builds_the_same_schedule_as_python(tiny_llama, tmp_path):
    lm = tiny_llama
    loaded = load_schedule(_schedule_file(tmp_path, lm, GOOD_PHASES), lm)
    built = SteeringSchedule([
        Phase([AddVector(_vector(lm, 11), site=2, coefficient=1.5)], until=AfterTokens(3)),
        Phase([AddVector(_vector(lm, 12), site=1, coefficient=-2.0)],
              until=ProjectionCrosses(_vector(lm, 11), 2, 0.0, above=False)),
        Phase([]),
    ])
    assert [p.name for p in loaded.phases] == ["first", "second", "free"]
    assert generate_scheduled(lm, _prompts(lm), loaded, max_new_tokens=N_NEW, return_switches=True) == \
        generate_scheduled(lm, _prompts(lm), built, max_new_tokens=N_NEW, return_switches=True)


@pytest.mark.parametrize("phases, message", [
    ([{"vectors": []}, {"vectors": []}], r"phase 0 \('phase 0'\) has no until condition"),
    ([{"until": {"after_tokens": 0}}, {}], r"phases\[0\]\.until: AfterTokens needs an integer n >= 1"),
    ([{"until": {"after_tokens": 2, "matches": "x"}}, {}], r"phases\[0\]\.until must hold exactly one of"),
    ([{"vectors": [{"path": "v11.safetensors", "colour": 1}]}], r"phases\[0\]\.vectors\[0\] has unknown field"),
    ([{"vectors": [{"path": "v11.safetensors", "layer": 9}]}], r"phases\[0\]\.vectors\[0\]\.layer is 9"),
    ([{"vectors": [{"path": "missing.safetensors"}]}], r"phases\[0\]\.vectors\[0\]\.path: cannot read"),
    ([{"until": {"projection": {"path": "v11.safetensors"}}}, {}], r"until\.projection\.threshold is missing"),
])
def test_schedule_file_mistakes_are_one_line_errors_naming_the_field(tiny_llama, tmp_path, phases, message):
    path = _schedule_file(tmp_path, tiny_llama, phases)
    with pytest.raises(ValueError, match=message) as error:
        load_schedule(path, tiny_llama)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_cli_generate_with_a_schedule(tiny_llama, tmp_path, monkeypatch, capsys):
    from steerkit import cli
    from steerkit.cli import main

    monkeypatch.setattr(cli._inputs, "_load_model", lambda args, name: tiny_llama)
    path, out = _schedule_file(tmp_path, tiny_llama, GOOD_PHASES), tmp_path / "answers.json"
    assert main(["generate", "--schedule", str(path), "-q", QUESTIONS[0], "-q", QUESTIONS[1],
                 "--max-new-tokens", str(N_NEW), "--compare", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    schedule = load_schedule(path, tiny_llama)
    expected, switches = generate_scheduled(tiny_llama, _prompts(tiny_llama)[:2], schedule, max_new_tokens=N_NEW,
                                            return_switches=True)
    assert [a["steered"] for a in record["answers"]] == expected
    assert record["answers"][0]["phase_starts"]["second"] == 3 == switches[0][0]
    assert main(["generate", "--schedule", str(path), "--layer", "2", "-q", "hi"]) == 2
    assert "--layer does not apply with --schedule" in capsys.readouterr().err
