"""Screenshot of the `steerkit serve` comparison page on the embedded model (for the docs).

Starts the app on a free loopback port with the embedded model and the vectors under
``--vectors`` (a `steerkit run` output folder), opens the page in headless Debian Chromium
through Playwright, types a prompt, adds a second steered column, runs, waits for every
stream to finish and saves a full-page screenshot.

Run: python benchmarks/serve_screenshot.py --vectors steerkit-out --out docs/images/serve_page.png
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time

import uvicorn
from playwright.sync_api import sync_playwright

from steerkit import load_model
from steerkit.serve import VectorRegistry, create_app


def serve_in_thread(app) -> tuple[uvicorn.Server, str]:
    """Start ``app`` on a free 127.0.0.1 port in a daemon thread; return the server and its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", default="steerkit-out")
    parser.add_argument("--prompt", default="What should I do on a rainy afternoon?")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", default="docs/images/serve_page.png")
    args = parser.parse_args(argv)
    lm = load_model()
    server, url = serve_in_thread(create_app(lm, VectorRegistry.from_folder(args.vectors, lm)))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            page.fill("#prompt", args.prompt)
            page.fill("#max-tokens", str(args.max_tokens))
            page.click("#add-column")
            second = page.locator(".column.steered").nth(1)
            options = second.locator("select.vector option").all_inner_texts()
            if len(options) > 1:
                second.locator("select.vector").select_option(index=1)
            page.click("#run")
            page.wait_for_selector("#run-status[data-state=done]", timeout=300_000)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.should_exit = True
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
