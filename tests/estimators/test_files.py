import numpy as np
import pytest

from steerkit.estimators.files import load_gguf_control_vector, load_vector, save_gguf_control_vector, save_vector


def test_safetensors_vector_and_sidecar_round_trip(tmp_path):
    vector = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    path = save_vector(tmp_path / "v", vector, model="m", layer=3, construction="pv", concept="pirate", coefficient=2.0)
    assert path.name == "v.safetensors" and (tmp_path / "v.json").is_file()
    loaded, sidecar = load_vector(tmp_path / "v.safetensors")
    np.testing.assert_array_equal(loaded, vector)
    assert sidecar == {"model": "m", "layer": 3, "construction": "pv", "concept": "pirate", "hidden_size": 8,
                       "coefficient": 2.0, "shape": [5, 8]}
    with pytest.raises(FileNotFoundError):
        load_vector(tmp_path / "missing")


def test_gguf_control_vector_maps_layers_to_llama_cpp_indices(tmp_path):
    rng = np.random.default_rng(1)
    vectors = {2: rng.normal(size=16).astype(np.float32), 7: rng.normal(size=16).astype(np.float32)}
    path = save_gguf_control_vector(tmp_path / "cv.gguf", vectors, model_hint="llama", n_layers=30)

    import gguf

    names = sorted(t.name for t in gguf.GGUFReader(str(path)).tensors)
    assert names == ["direction.1", "direction.6"]  # block output l (1-based) = direction.(l-1)
    loaded, meta = load_gguf_control_vector(path)
    assert set(loaded) == {2, 7}
    for layer, vector in vectors.items():
        np.testing.assert_array_equal(loaded[layer], vector)
    assert meta["general.architecture"] == "controlvector"
    assert meta["controlvector.model_hint"] == "llama" and meta["controlvector.layer_count"] == 30


def test_gguf_rejects_layers_llama_cpp_cannot_steer(tmp_path):
    with pytest.raises(ValueError, match=r"layers 2..30 only.*got \[1\]"):
        save_gguf_control_vector(tmp_path / "cv.gguf", {1: np.zeros(4)}, model_hint="llama", n_layers=30)
    assert not (tmp_path / "cv.gguf").exists()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_vector_files_from_other_tools_load_as_float32(tmp_path, dtype):
    """Peer libraries save vectors in the model's dtype; numpy alone cannot read bfloat16."""
    import torch
    from safetensors.torch import save_file

    vector = torch.randn(3, 8).to(getattr(torch, dtype))
    save_file({"vector": vector}, str(tmp_path / "v.safetensors"))
    loaded, sidecar = load_vector(tmp_path / "v.safetensors")
    assert loaded.dtype == np.float32 and sidecar == {}
    np.testing.assert_array_equal(loaded, vector.float().numpy())


def test_an_integer_vector_file_is_refused_naming_the_file(tmp_path):
    from safetensors.numpy import save_file

    save_file({"vector": np.ones((3, 8), dtype=np.int32)}, str(tmp_path / "v.safetensors"))
    with pytest.raises(ValueError, match=r"v\.safetensors.*int32.*floating-point"):
        load_vector(tmp_path / "v.safetensors")


def test_a_sidecar_that_cannot_be_written_leaves_the_saved_vector_untouched(tmp_path):
    save_vector(tmp_path / "v", np.ones(4), model="m", layer=1)
    with pytest.raises((TypeError, ValueError)):
        save_vector(tmp_path / "v", np.zeros(4), model="m", layer=1, note=object())  # not JSON
    vector, sidecar = load_vector(tmp_path / "v")
    np.testing.assert_array_equal(vector, np.ones(4))
    assert sidecar["layer"] == 1
