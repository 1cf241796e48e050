"""The comparison page driven in headless Chromium against a real uvicorn server (tiny model)."""

import json
import shutil

import httpx
import numpy as np
import pytest

from steerkit.estimators.files import save_vector
from steerkit.serve import VectorRegistry, create_app
from tests.serve.conftest import RunningServer

CHROMIUM = "/usr/bin/chromium"
PROMPT = "Tell me about the sea."
MAX_TOKENS = 12
NORM = 0.05  # the tiny model's answers change gradually with the strength at this norm (saturate by ~30)


def _small_random(seed: int, shape) -> np.ndarray:
    """Random rows of L2 norm :data:`NORM`."""
    vector = np.random.default_rng(seed).normal(size=shape)
    return (NORM * vector / np.linalg.norm(vector, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def page_folder(tmp_path_factory, steering_folder):
    """Two saved random vectors, ``sea/best`` (all layers, a run's layout recommending layers 1
    and 2) and ``calm`` (one layer), plus the trained steerer ``adapters/style``."""
    folder = tmp_path_factory.mktemp("page")
    save_vector(folder / "sea" / "vectors" / "best", _small_random(1, (4, 64)), model="tiny-llama", layer=2,
                construction="pv", concept="sea", coefficient=1.0, positions="response")
    (folder / "sea" / "summary.json").write_text(json.dumps({"recommendation": {"layers": [1, 2]}}))
    save_vector(folder / "calm", _small_random(2, (64,)), model="tiny-llama", layer=1, construction="unit_mean",
                concept="calm", coefficient=1.0)
    shutil.copytree(steering_folder / "adapters", folder / "adapters")
    return folder


@pytest.fixture(scope="module")
def server_url(page_folder, tiny_llama):
    """``http://127.0.0.1:PORT`` of the app serving ``page_folder``, from a background thread."""
    server = RunningServer(create_app(tiny_llama, VectorRegistry.from_folder(page_folder, tiny_llama)))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's binary, else Playwright's own); skipped when none launches."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    executable = CHROMIUM if shutil.which(CHROMIUM) else None
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
        except Exception as err:  # noqa: BLE001 - any launch failure means there is no usable browser
            pytest.skip(f"no Chromium can be launched ({CHROMIUM} or Playwright's own): {str(err).splitlines()[0]}")
        yield browser
        browser.close()


def _api_answer(url: str, model: str, steering: list[dict] | None) -> str:
    """The non-streamed answer the API gives for the page's request with ``steering``."""
    request = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS,
               "temperature": 0, "seed": 0, **({"steering": steering} if steering else {})}
    response = httpx.post(f"{url}/v1/chat/completions", json=request, timeout=60)
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


def test_page_streams_baseline_and_steered_columns_like_the_api(browser, server_url, tiny_llama, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server_url)
    page.wait_for_selector("body[data-ready=true]")

    page.fill("#prompt", PROMPT)
    page.fill("#max-tokens", str(MAX_TOKENS))
    first = page.locator(".column.steered").nth(0)
    assert first.locator("select.vector option").all_inner_texts() == [  # with concept and construction
        "calm (calm, unit_mean)", "sea/best (sea, pv)"]
    first.locator("select.vector").select_option("sea/best")
    layer_options = first.locator("select.layer option").all_inner_texts()
    assert layer_options == ["0", "1 \u2605 recommended", "2 \u2605 recommended", "3"]  # summary.json: [1, 2]
    assert first.locator("select.layer").input_value() == "2"  # the sidecar's layer
    slider = first.locator("input.strength")
    assert float(slider.input_value()) == 1.0  # the sidecar's coefficient
    slider.focus()
    for _ in range(6):
        page.keyboard.press("ArrowRight")  # six steps of 0.5
    assert float(slider.input_value()) == 4.0
    assert first.locator("output.strength-value").inner_text() == "4"

    page.click("#add-column")
    second = page.locator(".column.steered").nth(1)
    assert second.locator("select.method option").all_inner_texts() == ["contrastive vector", "trained"]
    second.locator("select.method").select_option("adapter")
    assert second.locator("select.vector option").all_inner_texts() == ["adapters/style (low_rank)"]  # its method

    page.click("#run")
    page.wait_for_selector("#run-status[data-state=done]", timeout=60_000)
    assert page.inner_text("#run-status") == "done" and not errors
    columns = page.locator(".column")
    assert columns.count() == 3
    assert [columns.nth(i).get_attribute("data-state") for i in range(3)] == ["done"] * 3
    texts = [columns.nth(i).locator(".answer").inner_text() for i in range(3)]
    # model output is set as text, never parsed as HTML
    assert all(columns.nth(i).locator(".answer *").count() == 0 for i in range(3))

    model = page.inner_text("#model-name")
    vector_steering = [{"vector": "sea/best", "layer": 2, "coefficient": 4.0, "positions": "response"}]
    expected = [_api_answer(server_url, model, steering)
                for steering in (None, vector_steering, [{"adapter": "adapters/style"}])]
    assert [t.strip() for t in texts] == [e.strip() for e in expected]
    assert all(texts) and texts[1] != texts[0] and texts[2] != texts[0]
    assert texts[1] != _api_answer(server_url, model, [{**vector_steering[0], "coefficient": 1.0}])  # the move counts

    for column in (first, second):  # the word diff marks the words that steering changed
        diff = column.locator(".diff")
        assert diff.is_visible()
        assert diff.locator("ins.diff-insert, del.diff-delete").count() > 0
        kept = diff.locator(":is(span.diff-equal, ins.diff-insert)").all_inner_texts()
        assert "".join(kept).split() == column.locator(".answer").inner_text().split()

    n = 2  # calm, sea/best
    assert page.locator("#cosine-heatmap rect.cell").count() == n * n
    assert page.locator("#pca-scatter circle.point").count() == n
    assert page.locator("#norm-chart polyline.norm-line").count() == 1  # sea/best holds all layers

    screenshot = tmp_path / "steerkit_serve_page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    print(f"screenshot: {screenshot}")
    page.close()
