"""The comparison page driven in headless Chromium against a real uvicorn server (tiny model)."""

import shutil
import socket
import threading
import time

import httpx
import pytest

from steerkit.serve import VectorRegistry, create_app

CHROMIUM = "/usr/bin/chromium"
PROMPT = "Tell me about the sea."
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def server_url(steering_folder, tiny_llama):
    """``http://127.0.0.1:PORT`` of the app on a free loopback port, served from a background thread."""
    import uvicorn

    app = create_app(tiny_llama, VectorRegistry.from_folder(steering_folder, tiny_llama))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(30)
    sock.close()


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
    assert first.locator("select.vector option").all_inner_texts() == [  # usable vectors, with concept and construction
        "calm (calm, unit_mean)", "pirate/best (pirate, pv)", "pirate/pv (pirate, pv)"]
    first.locator("select.vector").select_option("pirate/best")
    layer_options = first.locator("select.layer option").all_inner_texts()
    assert layer_options == ["0", "1 \u2605 recommended", "2 \u2605 recommended", "3"]  # summary.json: [1, 2]
    assert first.locator("select.layer").input_value() == "2"  # the sidecar's layer
    slider = first.locator("input.strength")
    slider.focus()
    page.keyboard.press("End")  # strength to the slider's maximum
    assert float(slider.input_value()) == float(slider.get_attribute("max")) > 0
    assert first.locator("output.strength-value").inner_text() == slider.input_value()

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
    vector_steering = [{"vector": "pirate/best", "layer": 2, "coefficient": float(slider.input_value()),
                        "positions": "response"}]
    expected = [_api_answer(server_url, model, steering)
                for steering in (None, vector_steering, [{"adapter": "adapters/style"}])]
    assert [t.strip() for t in texts] == [e.strip() for e in expected]
    assert all(texts) and texts[1] != texts[0] and texts[2] != texts[0]

    for column in (first, second):  # the word diff marks the words that steering changed
        diff = column.locator(".diff")
        assert diff.is_visible()
        assert diff.locator("ins.diff-insert, del.diff-delete").count() > 0
        kept = diff.locator(":is(span.diff-equal, ins.diff-insert)").all_inner_texts()
        assert "".join(kept).split() == column.locator(".answer").inner_text().split()

    n = 3  # calm, pirate/best, pirate/pv; "narrow" has another hidden size
    assert page.locator("#cosine-heatmap rect.cell").count() == n * n
    assert page.locator("#pca-scatter circle.point").count() == n
    assert page.locator("#norm-chart polyline.norm-line").count() == 1  # pirate/pv holds all layers

    screenshot = tmp_path / "steerkit_serve_page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    print(f"screenshot: {screenshot}")
    page.close()
