"""The web page in a real browser: headless Chromium (Debian) driven by Playwright."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import MINI
from tests.procs import Server, running

CHROMIUM = "/usr/bin/chromium"
#: Writes need this key (searches stay public): the page must let a user give it.
API_KEY = "web-test-key-0123456789"
SHOTS = Path(os.environ.get("IMSEARCH_SCREENSHOTS", "var/screenshots"))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    env = {
        "IMSEARCH_DATA_DIR": str(tmp_path_factory.mktemp("web")),
        "IMSEARCH_API_KEYS": f"web:{API_KEY}",
    }
    with running(Server(env)) as served:
        for path in sorted((MINI / "images").glob("*.jpg")):
            if path.stem.startswith(("ref_", "wall_")):
                reply = httpx.post(
                    f"{served.url}/v1/images",
                    data={"id": f"dvd/{path.stem}"},
                    files={"image": (path.name, path.read_bytes())},
                    headers={"X-API-Key": API_KEY},
                    timeout=60,
                )
                assert reply.status_code == 201, reply.text
        yield served.url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: `apt-get install chromium` (make test)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors: {errors}"


def test_search_finds_the_cover_and_explains_why(page: Page) -> None:
    page.set_input_files("#search-file", str(MINI / "images" / "droid_002.jpg"))
    first = page.locator("#results .result").first
    expect(first).to_have_attribute("data-id", "dvd/ref_002", timeout=60_000)
    expect(first.locator(".badge")).to_contain_text("inliers")
    expect(page.locator("#no-match")).to_be_hidden()
    expect(page.locator("#timings")).to_contain_text("total")
    expect(first.locator("img")).to_have_js_property("complete", True)
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)

    first.click()
    dialog = page.locator("#match-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#match-summary")).to_contain_text("keypoints agree")
    canvas = page.locator("#match-canvas")
    expect(canvas).not_to_have_attribute("data-lines", "0")
    assert int(canvas.get_attribute("data-lines") or 0) >= 10
    page.screenshot(path=str(SHOTS / "match.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_manage_add_delete_and_errors(page: Page) -> None:
    page.click("#tab-manage")
    expect(page.locator('#stats dd[data-key="images"]')).to_have_text("10")
    page.set_input_files("#add-file", str(MINI / "images" / "canon_006.jpg"))
    page.fill("#add-id", "photos/canon_006")
    page.fill("#add-metadata", '{"shop": "corner"}')
    page.click("#add-go")
    expect(page.locator("#manage-status")).to_contain_text("unauthorized", timeout=60_000)
    page.fill("#api-key", API_KEY)
    page.click("#key-go")
    expect(page.locator("#key-status")).to_have_text("API key set for this tab.")
    page.click("#add-go")
    expect(page.locator("#manage-status")).to_have_text("Added photos/canon_006.", timeout=60_000)
    expect(page.locator('#stats dd[data-key="images"]')).to_have_text("11")

    page.fill("#add-metadata", "not json")
    page.click("#add-go")
    expect(page.locator("#manage-status")).to_contain_text("metadata is not valid JSON")
    expect(page.locator("#manage-status")).to_have_class("error")

    page.fill("#delete-id", "photos/canon_006")
    page.click("#delete-go")
    expect(page.locator("#manage-status")).to_have_text("Deleted photos/canon_006.")
    expect(page.locator('#stats dd[data-key="images"]')).to_have_text("10")
    page.fill("#delete-id", "photos/nothing")
    page.click("#delete-go")
    expect(page.locator("#manage-status")).to_contain_text("unknown_id")
    page.screenshot(path=str(SHOTS / "manage.png"), full_page=True)

    # With a key set, thumbnails come through fetch (an <img> cannot send the header).
    page.click("#tab-search")
    page.set_input_files("#search-file", str(MINI / "images" / "droid_005.jpg"))
    first = page.locator("#results .result").first
    expect(first).to_have_attribute("data-id", "dvd/ref_005", timeout=60_000)
    expect(first.locator("img")).to_have_attribute("src", re.compile("^blob:"))
    first.locator("img").evaluate("img => img.decode()")
    assert first.locator("img").evaluate("img => img.naturalWidth") > 0


def test_collection_picker_and_filter_box(page: Page) -> None:
    """Create a collection from the page, add to it, search in it; filter; drop it."""
    page.click("#tab-manage")
    page.fill("#create-name", "shop")
    page.click("#create-go")
    expect(page.locator("#collections-status")).to_contain_text("Created shop")
    expect(page.locator("#collection")).to_have_value("shop")
    expect(page.locator('#stats dd[data-key="images"]')).to_have_text("0")
    for image_id, shelf in (("ref_002", "top"), ("ref_005", "bottom")):
        page.set_input_files("#add-file", str(MINI / "images" / f"{image_id}.jpg"))
        page.fill("#add-id", image_id)
        page.fill("#add-metadata", f'{{"shelf": "{shelf}"}}')
        page.click("#add-go")
        expect(page.locator("#manage-status")).to_have_text(f"Added {image_id}.", timeout=60_000)
    expect(page.locator('#stats dd[data-key="images"]')).to_have_text("2")

    page.click("#tab-search")
    page.set_input_files("#search-file", str(MINI / "images" / "droid_002.jpg"))
    results = page.locator("#results .result")
    expect(results.first).to_have_attribute("data-id", "ref_002", timeout=60_000)
    expect(results).to_have_count(2)  # this collection's images only
    page.fill("#search-filter", '{"shelf": "bottom"}')
    page.click("#search-go")
    expect(results).to_have_count(1)
    expect(results.first).to_have_attribute("data-id", "ref_005", timeout=60_000)
    expect(page.locator("#no-match")).to_be_visible()
    page.fill("#search-filter", "{not json")
    page.click("#search-go")
    expect(page.locator("#search-status")).to_contain_text("not JSON")
    page.fill("#search-filter", "")
    page.screenshot(path=str(SHOTS / "collections.png"), full_page=True)

    page.click("#tab-manage")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#drop-go")
    expect(page.locator("#collections-status")).to_have_text("Dropped shop.")
    expect(page.locator("#collection")).to_have_value("default")
    expect(page.locator('#stats dd[data-key="images"]')).to_have_text("10")


def test_phone_width_and_keyboard(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("#tab-search")
    page.focus("#tab-manage")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-manage")).to_be_visible()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-search")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    assert page.locator("label[for=search-file]").is_visible()
    page.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
