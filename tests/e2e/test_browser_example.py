"""examples/browser/ in headless Chromium: a photo picked in the page is searched with the
TypeScript client's browser bundle, across origins (CORS), and the results are shown."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import MINI
from tests.e2e.test_web import CHROMIUM
from tests.procs import API_KEY, Server, free_port, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repository() -> Iterator[str]:
    """The repository served as static files, as the example's comment says."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(ROOT))
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_the_browser_example_searches_with_the_typescript_client(tmp_path, repository) -> None:
    env = {
        "IMSEARCH_DATA_DIR": str(tmp_path / "data"),
        "IMSEARCH_API_KEYS": API_KEY,
        "IMSEARCH_CORS_ORIGINS": repository,
    }
    with running(Server(env)) as server:
        for name in ("ref_001", "ref_002", "ref_003", "wall_altai"):
            path = MINI / "images" / f"{name}.jpg"
            reply = httpx.post(
                f"{server.url}/v1/images",
                data={"id": f"dvd/{name}"},
                files={"image": (path.name, path.read_bytes())},
                headers={"X-API-Key": API_KEY},
                timeout=60,
            )
            assert reply.status_code == 201, reply.text
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(f"{repository}/examples/browser/?api={server.url}")
            page.set_input_files("#photo", str(MINI / "images" / "droid_002.jpg"))
            first = page.locator("#results li").first
            expect(first).to_have_attribute("data-id", "dvd/ref_002", timeout=60_000)
            expect(first).to_contain_text("verified")
            thumbnail = first.locator("img")
            expect(thumbnail).to_have_js_property("complete", True)
            assert thumbnail.evaluate("img => img.naturalWidth") > 0

            page.set_input_files("#photo", str(MINI / "images" / "canon_001.jpg"))
            expect(page.locator("#status")).to_contain_text("results", timeout=60_000)
            browser.close()
