"""The web UI in a real browser (Playwright driving Debian's chromium) against the real server
on a tiny trained run, at a desktop and at a phone-width viewport."""

import shutil

import httpx
import pytest

from lmrec.serving.launch import free_port
from tests.conftest import tiny_run
from tests.serving.test_server_process import start

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_pages_and_assets_are_served(tmp_path):
    from tests.conftest import call_service

    tiny_run(tmp_path, "sasrec")
    run, db = tmp_path / "run", tmp_path / "e.db"
    page = call_service(run, db, "GET", "/")
    assert page.status_code == 200 and "<title>lmrec</title>" in page.text and "/static/app.js" in page.text
    assert call_service(run, db, "GET", "/static/app.js").status_code == 200
    assert call_service(run, db, "GET", "/static/..%2Frun.json").status_code == 404
    report = call_service(run, db, "GET", "/report/")
    assert report.status_code == 200 and "<table>" in report.text and 'src="plots/' in report.text
    assert call_service(run, db, "GET", "/report/plots/item_map.png").headers["content-type"] == "image/png"
    assert call_service(run, db, "GET", "/report/plots/..%2F..%2Frun.json").status_code == 404
    hits = call_service(run, db, "GET", "/search?q=NUMBER 1&k=3").json()
    assert [h["title"] for h in hits] and all("number 1" in h["title"].lower() for h in hits)
    assert call_service(run, db, "GET", "/search?q=%20").status_code == 422
    user = call_service(run, db, "GET", "/users/u3?k=2").json()
    assert user["events"] == 8 and len(user["recent"]) == 2
    assert call_service(run, db, "GET", "/users/nobody").status_code == 404
    png = call_service(run, db, "GET", "/users/u3/map.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert call_service(run, db, "GET", "/users/nobody/map.png").status_code == 404


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no chromium browser: install Debian's chromium (make test does when apt-get is available)")
    pytest.importorskip("playwright", reason="browser tests need playwright: pip install playwright")
    folder = tmp_path_factory.mktemp("web")
    tiny_run(folder, "sasrec")
    port = free_port()
    proc = start(folder / "run", folder / "events.db", port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.parametrize("width", [1280, 390])
def test_a_session_in_the_browser(server, tmp_path, width):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(server)
            expect(page.locator("#run-info")).to_contain_text("sasrec model, 20 items, 30 users")
            expect(page.locator("#recs-source")).to_contain_text("first slate")
            first = page.locator("#recs li").first.inner_text()

            # Keyboard only: type in the search box and press Enter.
            page.get_by_label("Words in the title").fill("number 7")
            page.keyboard.press("Enter")
            expect(page.locator("#results li").first).to_contain_text("Item number 7")
            results = page.get_by_role("list", name="Search results")
            results.get_by_role("button", name="Add Item number 7 to the session").click()
            expect(page.locator("#session li")).to_have_count(1)
            expect(page.locator("#recs-source")).to_contain_text("after the 1 item(s) of this session")
            assert page.locator("#recs li").first.inner_text() != first
            assert "Item number 7" not in page.locator("#recs .title").all_inner_texts()  # seen: not recommended

            page.locator("#recs li").first.get_by_text("Why?").click()
            table = page.locator("#recs li").first.locator("table")
            expect(table).to_be_visible()
            expect(table.locator("caption")).to_contain_text("History events behind")
            expect(table.locator("tbody tr").first).to_contain_text("Item number 7")
            shot = tmp_path / f"session-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            # Phone width: nothing wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= width

            # Bad input shows a message, never a blank page.
            page.get_by_label("Words in the title").fill("")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_role("alert")).to_contain_text("Type a word")
            page.get_by_label("Known user id").fill("nobody-here")
            page.get_by_role("button", name="Show this user").click()
            expect(page.get_by_role("alert")).to_contain_text('Unknown user "nobody-here"')

            # A known user, and an event posted from the page.
            user = "u3" if width > 500 else "u4"  # one server for both widths: each posts for its own user
            page.get_by_label("Known user id").fill(user)
            page.get_by_role("button", name="Show this user").click()
            expect(page.locator("#who")).to_contain_text(f"User {user}, 8 events")
            page.get_by_text("On the item map").click()
            expect(page.get_by_alt_text(f"User {user}'s history and recommendations on the item map",
                                        exact=False)).to_be_visible()
            expect(page.get_by_role("alert")).to_be_hidden()
            page.locator("#recs li").first.get_by_role("button").click()
            expect(page.get_by_role("alert")).to_contain_text("needs the service's API key")  # started with one
            page.get_by_text("API key (only if the service was started with one)").click()
            page.get_by_label("X-API-Key for posting events").fill("k")
            page.locator("#recs li").first.get_by_role("button").click()
            expect(page.locator("#who")).to_contain_text("9 events")
            expect(page.locator("#who")).to_contain_text("recorded:")
        finally:
            browser.close()
    # The event went to the store: the next request sees it too.
    assert httpx.get(f"{server}/users/{user}", timeout=10).json()["events"] == 9


def test_report_page_in_the_browser(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server)
            with page.expect_popup() as popup:
                page.get_by_role("link", name="Run report (metrics, plots, item map)").click()
            report = popup.value
            report.wait_for_load_state("load")  # images included
            expect(report.locator("h1").first).to_be_visible()
            images = report.locator("img")
            assert images.count() >= 2
            assert all(report.evaluate("(img) => img.complete && img.naturalWidth > 0", images.nth(i).element_handle())
                       for i in range(images.count()))
        finally:
            browser.close()
