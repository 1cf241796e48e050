"""The comparison page's JSON endpoints: vector summaries, geometry (cosine, PCA) and the word diff."""

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy.spatial.distance import cdist, pdist

from steerkit.estimators.files import load_vector
from steerkit.serve import VectorRegistry
from steerkit.serve.page import MAX_DIFF_CHARS, cosine_matrix, direction_at_layer, router, word_diff

USABLE = ["calm", "pirate/best", "pirate/pv"]  # "narrow" has another hidden size


@pytest.fixture(scope="module")
def registry(steering_folder, tiny_llama):
    return VectorRegistry.from_folder(steering_folder, tiny_llama)


def _client(registry) -> TestClient:
    app = FastAPI()
    app.state.registry = registry
    app.include_router(router)
    return TestClient(app)


@pytest.fixture(scope="module")
def client(registry):
    return _client(registry)


def _direction(steering_folder, name):
    """The vector ``name`` at its sidecar layer, read from its file."""
    vector, sidecar = load_vector(steering_folder / name.replace("pirate/", "pirate/vectors/"))
    return vector[sidecar["layer"]] if vector.ndim == 2 else vector


def test_vectors_lists_every_entry_with_numpy_norms(client, steering_folder, tiny_llama):
    body = client.get("/api/vectors").json()
    assert (body["model"], body["n_layers"]) == (tiny_llama.name, tiny_llama.n_blocks + 1)
    vectors = {v["name"]: v for v in body["vectors"]}
    assert sorted(vectors) == ["calm", "narrow", "pirate/best", "pirate/pv"]
    assert [a["name"] for a in body["adapters"]] == ["adapters/style"]
    assert body["adapters"][0]["norms"] is None

    all_layers, _ = load_vector(steering_folder / "pirate" / "vectors" / "pv")
    np.testing.assert_allclose(vectors["pirate/pv"]["norms"], np.linalg.norm(all_layers.astype(np.float64), axis=1),
                               rtol=1e-12)
    np.testing.assert_allclose(vectors["pirate/pv"]["norm"], np.linalg.norm(all_layers[1].astype(np.float64)),
                               rtol=1e-12)
    one_layer, _ = load_vector(steering_folder / "calm")
    assert vectors["calm"]["norms"] is None
    np.testing.assert_allclose(vectors["calm"]["norm"], np.linalg.norm(one_layer.astype(np.float64)), rtol=1e-12)
    assert vectors["pirate/best"]["recommended_layers"] == [1, 2]
    assert (vectors["pirate/best"]["layer"], vectors["pirate/best"]["construction"],
            vectors["pirate/best"]["concept"]) == (2, "pv", "pirate")
    assert vectors["narrow"]["problem"] and all(vectors[n]["problem"] is None for n in USABLE)


def test_geometry_cosine_matches_scipy_and_pca_keeps_the_distances(client, steering_folder):
    body = client.get("/api/vectors/geometry").json()
    assert body["names"] == USABLE  # the vector of another hidden size is left out
    directions = np.array([_direction(steering_folder, name) for name in USABLE], dtype=np.float64)

    cosine = np.array(body["cosine"])
    np.testing.assert_allclose(cosine, cosine.T, atol=0)
    np.testing.assert_allclose(np.diag(cosine), 1.0, atol=1e-12)
    np.testing.assert_allclose(cosine, 1 - cdist(directions, directions, "cosine"), atol=1e-12)

    pca = np.array(body["pca"])
    assert pca.shape == (3, 2)
    # three points span a plane, so two principal components keep every pairwise distance
    np.testing.assert_allclose(pdist(pca), pdist(directions), rtol=1e-9)
    np.testing.assert_allclose(sum(body["explained_variance_ratio"]), 1.0, rtol=1e-9)
    assert body["explained_variance_ratio"][0] >= body["explained_variance_ratio"][1]


def test_geometry_of_one_vector_and_of_none(steering_folder, tiny_llama):
    registry = VectorRegistry.from_folder(steering_folder, tiny_llama)
    registry.entries = {"calm": registry.entries["calm"]}
    one = _client(registry).get("/api/vectors/geometry").json()
    assert (one["names"], one["cosine"], one["pca"]) == (["calm"], [[1.0]], [[0.0, 0.0]])
    registry.entries = {}
    none = _client(registry).get("/api/vectors/geometry").json()
    assert (none["names"], none["cosine"], none["pca"]) == ([], [], [])


def test_direction_without_a_layer_is_the_largest_row_and_a_zero_vector_has_zero_cosine():
    rows = np.array([[0.0, 1.0], [3.0, 4.0], [1.0, 1.0]])
    np.testing.assert_array_equal(direction_at_layer(rows, None), [3.0, 4.0])
    np.testing.assert_array_equal(direction_at_layer(rows, 2), [1.0, 1.0])
    cosine = cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]))
    np.testing.assert_array_equal(cosine, [[1, 0, -1], [0, 0, 0], [-1, 0, 1]])


def test_word_diff_marks_changed_words_and_rebuilds_both_texts():
    baseline, steered = "The cat sat on the mat.\nIt purred.", "The  dog sat on a mat.\nIt purred loudly, arr!"
    segments = word_diff(baseline, steered)
    assert "".join(s["text"] for s in segments if s["op"] != "delete") == steered
    assert "".join(s["text"] for s in segments if s["op"] != "insert").split() == baseline.split()
    changed = {(s["op"], s["text"].strip()) for s in segments if s["op"] != "equal"}
    assert changed == {("delete", "cat"), ("insert", "dog"), ("delete", "the"), ("insert", "a"),
                       ("delete", "purred."), ("insert", "purred loudly, arr!")}
    assert word_diff("same words", "same words") == [{"op": "equal", "text": "same words"}]


def test_diff_endpoint_and_the_page_files(client):
    body = client.post("/api/diff", json={"baseline": "a b c", "steered": "a x c"}).json()
    assert body["segments"] == [{"op": "equal", "text": "a "}, {"op": "delete", "text": "b "},
                                {"op": "insert", "text": "x "}, {"op": "equal", "text": "c"}]
    assert client.post("/api/diff", json={"baseline": "a"}).status_code == 422
    too_long = {"baseline": "a", "steered": "a " * (MAX_DIFF_CHARS // 2 + 1)}
    assert client.post("/api/diff", json=too_long).status_code == 422
    page = client.get("/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
