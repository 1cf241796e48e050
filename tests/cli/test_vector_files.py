"""Bad vector and activation files, bad layers and coefficients: one `error:` line, exit 2."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from steerkit import Site, cli, record_activations
from steerkit.activations import ActivationSet
from steerkit.cli import main
from steerkit.concepts import scaffold_concept
from steerkit.estimators.files import load_vector, save_vector

D, N_LAYERS = 64, 4  # the tiny random llama: hidden size 64, 3 blocks = layers 0..3


def one_error_line(capsys, *needles):
    """The captured stderr is a single `error:` line holding every needle."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def activation_set(concept="myconcept", info=None, seed=0):
    """6 contrasts (3 questions x 2 instruction pairs) of random activations, 4 layers x 64."""
    rng = np.random.default_rng(seed)
    rows = [(q, p, 2 * q + p, y) for q in range(3) for p in range(2) for y in (1, 0)]
    q, p, c, y = map(np.array, zip(*rows))
    arrays = {"response_avg": rng.normal(size=(len(rows), N_LAYERS, D)).astype(np.float32)}
    return ActivationSet(arrays, y, q, p, c, model_name="tiny", concept=concept, info=info or {})


def vector_file(tmp_path, vector=None, **metadata):
    vector = np.random.default_rng(1).normal(size=(N_LAYERS, D)) if vector is None else vector
    metadata = {"model": "tiny", "layer": 2, "construction": "pv", "concept": "pirate", "coefficient": 2.0,
                **metadata}
    return save_vector(tmp_path / "v", vector, **metadata)


def edit_sidecar(path, **changes):
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **changes}))
    return path


@pytest.fixture
def tiny_model(monkeypatch, tiny_llama):
    """Make every command load the tiny random llama instead of a real model."""
    monkeypatch.setattr(cli._inputs, "_load_model", lambda args, name: tiny_llama)
    return tiny_llama


# -- vector files ---------------------------------------------------------------------------
def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-7])


def _not_safetensors(path):
    path.write_text('{"vector": [1, 2, 3]}')


def _other_tensor(path):
    save_file({"weights": np.ones((2, D), np.float32)}, str(path))


def _nan_vector(path):
    vector = np.ones((N_LAYERS, D), np.float32)
    vector[1, 5] = np.nan
    save_file({"vector": vector}, str(path))


def _sidecar_not_json(path):
    path.with_suffix(".json").write_text('{"layer": 2,')


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        (_empty, ["v.safetensors", "header too small", "steerkit fit"]),
        (_truncated, ["v.safetensors", "not fully covered", "steerkit fit"]),
        (_not_safetensors, ["v.safetensors", "not a readable safetensors", "steerkit fit"]),
        (_other_tensor, ["v.safetensors", "no 'vector' tensor", "weights"]),
        (_nan_vector, ["v.safetensors", "1 NaN or infinite", "(1, 5)"]),
        (_sidecar_not_json, ["v.json", "not valid JSON", "line 1"]),
        (lambda p: edit_sidecar(p, layer="2"), ["v.json", "'layer'", "'2'"]),
        (lambda p: edit_sidecar(p, layer=-1), ["v.json", "'layer'", "-1"]),
        (lambda p: edit_sidecar(p, layer=4), ["v.json", "'layer'", "0..3"]),
        (lambda p: edit_sidecar(p, hidden_size=32), ["v.json", "'hidden_size'", "32", "64"]),
        (lambda p: edit_sidecar(p, shape=[3, 64]), ["v.json", "'shape'", "[3, 64]", "[4, 64]"]),
        (lambda p: edit_sidecar(p, coefficient=float("nan")), ["v.json", "'coefficient'", "nan"]),
        (lambda p: edit_sidecar(p, coefficient="2"), ["v.json", "'coefficient'"]),
        (lambda p: edit_sidecar(p, concept=["pirate"]), ["v.json", "'concept'"]),
        (lambda p: p.with_suffix(".json").write_text("[1, 2]"), ["v.json", "JSON object"]),
    ],
    ids=["empty", "truncated", "not-safetensors", "no-vector-tensor", "nan-vector", "sidecar-not-json",
         "layer-string", "layer-negative", "layer-out-of-range", "hidden-size", "shape", "coefficient-nan",
         "coefficient-string", "concept-list", "sidecar-list"],
)
def test_generate_refuses_a_damaged_vector_file_in_one_line(tmp_path, capsys, tiny_model, damage, needles):
    path = vector_file(tmp_path)
    damage(path)
    assert main(["generate", str(path), "-q", "hi"]) == 2
    one_error_line(capsys, *needles)


def test_save_vector_refuses_non_finite_vectors_and_bad_metadata(tmp_path):
    vector = np.ones((N_LAYERS, D))
    vector[0, 0] = np.inf
    with pytest.raises(ValueError, match="steering vector contains 1 NaN or infinite"):
        save_vector(tmp_path / "v", vector)
    for bad in ({"layer": -1}, {"layer": 4}, {"layer": 2.0}, {"coefficient": float("inf")}):
        with pytest.raises(ValueError, match=f"'{next(iter(bad))}'"):
            save_vector(tmp_path / "v", np.ones((N_LAYERS, D)), **bad)
    assert not list(tmp_path.iterdir())


# -- activation files -------------------------------------------------------------------------
def _with_metadata(path, **changes):
    """Rewrite an ActivationSet file with some metadata fields replaced."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        meta = json.loads(handle.metadata()["steerkit"])
    raw = changes.pop("raw", None)
    save_file(tensors, str(path), metadata={"steerkit": raw if raw is not None else json.dumps({**meta, **changes})})


def _without_tensor(path, name):
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    del tensors[name]
    save_file(tensors, str(path), metadata={"steerkit": json.dumps({"model_name": "tiny", "concept": "c",
                                                                     "layer_convention": "x"})})


def _nan_activations(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    tensors["activations.response_avg"][3, 2, 1] = np.nan
    save_file(tensors, str(path), metadata=metadata)


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        (_empty, ["acts.safetensors", "header too small", "steerkit extract"]),
        (_truncated, ["acts.safetensors", "not fully covered", "steerkit extract"]),
        (_not_safetensors, ["acts.safetensors", "not a readable safetensors"]),
        (lambda p: _with_metadata(p, raw="{not json"), ["acts.safetensors", "metadata is not valid JSON"]),
        (lambda p: _with_metadata(p, model_name=7), ["acts.safetensors", "'model_name'", "7"]),
        (lambda p: _with_metadata(p, concept=["x"]), ["acts.safetensors", "'concept'"]),
        (lambda p: _with_metadata(p, info=[1]), ["acts.safetensors", "'info'"]),
        (lambda p: _with_metadata(p, samples=[1, 2]), ["acts.safetensors", "'samples'"]),
        (lambda p: _with_metadata(p, format_version=99), ["acts.safetensors", "format_version", "99"]),
        (lambda p: _without_tensor(p, "contrast_ids"), ["acts.safetensors", "'contrast_ids'"]),
        (_nan_activations, ["acts.safetensors", "response_avg", "1 NaN or infinite", "(3, 2, 1)"]),
    ],
    ids=["empty", "truncated", "not-safetensors", "metadata-not-json", "model-name-int", "concept-list",
         "info-list", "samples-not-records", "newer-format", "missing-ids", "nan-activations"],
)
def test_fit_refuses_a_damaged_activation_file_in_one_line(tmp_path, capsys, damage, needles):
    path = activation_set().save(tmp_path / "acts")
    damage(path)
    assert main(["fit", str(path), "--out", str(tmp_path / "vectors")]) == 2
    one_error_line(capsys, *needles)
    assert not (tmp_path / "vectors").exists()


# -- options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["4", "30"])
def test_fit_refuses_a_layer_outside_the_activations(tmp_path, capsys, layer):
    path = activation_set().save(tmp_path / "acts")
    assert main(["fit", str(path), "--layer", layer, "--out", str(tmp_path / "vectors")]) == 2
    one_error_line(capsys, "--layer", layer, "0..3")


@pytest.mark.parametrize("value", ["1e30", "-20000"])
def test_fit_refuses_an_absurd_coefficient(tmp_path, capsys, value):
    path = activation_set().save(tmp_path / "acts")
    assert main(["fit", str(path), f"--coefficient={value}", "--out", str(tmp_path / "vectors")]) == 2
    one_error_line(capsys, f"--coefficient={float(value)!r}", "between -10000 and 10000")


def test_fit_records_where_the_concept_came_from(tmp_path):
    source = str(tmp_path / "myconcept.json")
    path = activation_set(info={"concept_source": source}).save(tmp_path / "acts")
    assert main(["fit", str(path), "--construction", "pv", "--out", str(tmp_path / "vectors")]) == 0
    assert load_vector(tmp_path / "vectors" / "pv")[1]["concept_source"] == source


def test_generate_refuses_a_layer_outside_an_all_layer_vector(tmp_path, capsys, tiny_model):
    path = vector_file(tmp_path)
    assert main(["generate", str(path), "-q", "hi", "--layer", "7"]) == 2
    one_error_line(capsys, "--layer 7", "v.safetensors", "0..3")


def test_generate_refuses_a_layer_outside_the_model(tmp_path, capsys, tiny_model):
    path = vector_file(tmp_path, vector=np.ones(D), layer=None)
    assert main(["generate", str(path), "-q", "hi", "--layer", "9"]) == 2
    one_error_line(capsys, "--layer 9", "tiny-llama", "0..3")


def test_generate_names_the_sidecar_layer_when_it_does_not_fit_the_model(tmp_path, capsys, tiny_model):
    path = vector_file(tmp_path, vector=np.ones(D), layer=18)
    assert main(["generate", str(path), "-q", "hi"]) == 2
    one_error_line(capsys, "v.json", "layer 18", "--layer", "0..3")


def test_generate_refuses_a_vector_of_another_width(tmp_path, capsys, tiny_model):
    path = vector_file(tmp_path, vector=np.ones(D + 1))
    assert main(["generate", str(path), "-q", "hi"]) == 2
    one_error_line(capsys, "v.safetensors", "65", "hidden size 64")


@pytest.mark.parametrize("value", ["2e4", "-1e5"])
def test_generate_refuses_an_absurd_coefficient(tmp_path, capsys, tiny_model, value):
    assert main(["generate", str(vector_file(tmp_path)), "-q", "hi", f"--coefficient={value}"]) == 2
    one_error_line(capsys, f"--coefficient={float(value)!r}", "between -10000 and 10000")


def test_generate_uses_the_concept_file_recorded_in_the_sidecar(tmp_path, capsys, tiny_model):
    concept = scaffold_concept("myconcept", "speaks in riddles")
    concept.save(tmp_path / "myconcept.json")
    path = vector_file(tmp_path, concept="myconcept", concept_source=str(tmp_path / "myconcept.json"))
    assert main(["generate", str(path), "--n-questions", "2", "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    for question in concept.evaluation_questions[:2]:
        assert f"Q: {question}" in out


@pytest.mark.parametrize("source", [None, "gone.json"])
def test_generate_without_questions_or_a_known_concept_says_what_to_pass(tmp_path, capsys, tiny_model, source):
    source = None if source is None else str(tmp_path / source)
    path = vector_file(tmp_path, concept="myconcept", concept_source=source)
    assert main(["generate", str(path)]) == 2
    one_error_line(capsys, "myconcept", "--concept", "--question")


def test_extract_fit_generate_from_a_concept_file_run_elsewhere(tmp_path, capsys, tiny_model, monkeypatch):
    """The concept file's absolute path travels extract -> activations -> fit -> sidecar, so
    `generate VECTOR` finds its questions from another working folder (a relative path would not)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    concept = scaffold_concept("myconcept", "speaks in riddles")
    concept.save("myconcept.json")
    assert main(["extract", "myconcept.json", "--out", "out", "--n-questions", "2", "--max-new-tokens", "2"]) == 0
    assert main(["fit", "out/myconcept/activations.safetensors", "--construction", "pv", "--layer", "2"]) == 0
    monkeypatch.chdir(tmp_path / "elsewhere")
    vector = tmp_path / "work" / "out" / "myconcept" / "vectors" / "pv.safetensors"
    capsys.readouterr()
    assert main(["generate", str(vector), "--n-questions", "1", "--max-new-tokens", "2"]) == 0
    assert f"Q: {concept.evaluation_questions[0]}" in capsys.readouterr().out


def test_generate_prefers_the_recorded_concept_file_over_a_bundled_namesake(tmp_path, capsys, tiny_model):
    """A user's edited copy of a bundled concept keeps its name; its own questions must be used."""
    from steerkit.concepts import Concept, load_concept

    data = load_concept("formal").to_dict()
    data["evaluation_questions"][0] = "What is the capital of my own edited concept?"
    Concept.from_dict(data).save(tmp_path / "formal.json")
    path = vector_file(tmp_path, concept="formal", concept_source=str(tmp_path / "formal.json"))
    assert main(["generate", str(path), "--n-questions", "1", "--max-new-tokens", "2"]) == 0
    assert "Q: What is the capital of my own edited concept?" in capsys.readouterr().out


def test_search_on_activations_from_a_lost_concept_file_says_to_pass_concept(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli._inputs, "_load_model", lambda args, name: pytest.fail("the model was loaded"))
    path = activation_set(info={"concept_source": str(tmp_path / "gone.json")}).save(tmp_path / "acts")
    assert main(["search", str(path), "--out", str(tmp_path / "search")]) == 2
    one_error_line(capsys, "acts.safetensors", "'myconcept'", "gone.json no longer exists", "--concept")


def test_generate_steers_the_sublayer_recorded_in_the_sidecar(tmp_path, tiny_model):
    vector = np.random.default_rng(3).normal(size=D).astype(np.float32)
    attn = Site(2, "attn")
    with record_activations(tiny_model, [attn]) as plain:
        tiny_model.generate(["hi"], max_new_tokens=1)
    deltas = {}
    for component in ("residual", "attn"):
        path = save_vector(tmp_path / component, vector, layer=2, component=component, coefficient=2.0)
        out = tmp_path / f"{component}.json"
        with record_activations(tiny_model, [attn]) as steered:
            assert main(["generate", str(path), "-q", "hi", "--max-new-tokens", "1", "--out", str(out)]) == 0
        assert json.loads(out.read_text())["component"] == component
        deltas[component] = (steered[attn][0] - plain[attn][0])[0].numpy()
    np.testing.assert_array_equal(deltas["residual"], 0)  # block 2's output is steered after its attention
    np.testing.assert_array_equal(deltas["attn"][:-1], 0)  # "response": the last prompt position
    np.testing.assert_allclose(deltas["attn"][-1], 2.0 * vector, atol=1e-4)


def test_generate_keeps_a_recorded_coefficient_of_zero(tmp_path, capsys, tiny_model):
    """0.0 is a strength (steering off), not a missing one."""
    path = vector_file(tmp_path, coefficient=0.0)
    assert main(["generate", str(path), "-q", "hi", "--max-new-tokens", "2"]) == 0
    assert "coefficient 0.0" in capsys.readouterr().err
