"""The search page in a real browser (Debian's Chromium driven by Playwright), and the
gateway routes behind it: thumbnails by id only, replies without image bytes.

One Flow serves the module with the 260 shared memes indexed. Every browser test saves
a screenshot to test-artifacts/screenshots/<test>.png, kept by CI.
"""

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from memeflow.client import MemeClient
from memeflow.client.files import file_id
from memeflow.documents import MemeDoc
from tests.conftest import MEMES, REPO, Service, serving

pytestmark = pytest.mark.flow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
DRAKE = MEMES / "drake" / "default.jpg"
API_KEY = "page-test-key"
TIMEOUT_MS = 90_000  # an image search on two busy cores takes seconds, not minutes


@pytest.fixture(scope="module")
def indexed(service) -> MemeClient:
    run = service.cli("index", str(MEMES))
    assert run.returncode == 0, run.stderr
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    assert client.count() == 260
    return client


@pytest.fixture(scope="module")
def browser(indexed) -> Iterator:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the page is tested in Debian's Chromium. Install it with "
            "`sudo apt-get install -y chromium` (.ci/run does this on CI machines)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, service, request) -> Iterator:
    context = browser.new_context(base_url=service.http, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def result_ids(page) -> list[str]:
    return page.locator("#results a").evaluate_all("links => links.map(a => a.dataset.id)")


def wait_for_results(page, status: str) -> None:
    """The status line names the finished search; the grid is drawn by then."""
    page.wait_for_function(
        "text => document.getElementById('status').textContent.includes(text)"
        " && !document.getElementById('results').hasAttribute('aria-busy')",
        arg=status,
    )


def test_page_opens_with_a_search_box(page) -> None:
    page.goto("/")
    assert page.title() == "memeflow"
    box = page.locator("#query")
    assert box.is_visible() and box.evaluate("el => el === document.activeElement")
    assert "Type a few words" in page.locator("#status").inner_text()
    assert page.locator("#results li").count() == 0


def test_typing_a_query_shows_a_grid_with_thumbnails(page) -> None:
    page.goto("/")
    page.locator("#query").fill("drake rejecting something")
    page.keyboard.press("Enter")
    wait_for_results(page, "24 results")
    assert page.url.endswith("/?q=drake+rejecting+something")
    cards = page.locator("#results li")
    assert cards.count() == 24
    first = cards.first
    assert "score" in first.locator(".meta").inner_text()
    assert first.locator(".name").inner_text()
    page.wait_for_function(  # every thumbnail loaded from /thumbnails/<id>
        "() => [...document.querySelectorAll('#results img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )


def test_uploading_a_meme_shows_it_first(page) -> None:
    page.goto("/")
    page.locator("#image").set_input_files(str(DRAKE))
    wait_for_results(page, "results for your image (default.jpg)")
    assert result_ids(page)[0] == file_id(DRAKE)
    assert page.locator("#results .meta").first.inner_text().startswith("score 1.000")


def test_clicking_a_result_searches_more_like_it(page) -> None:
    page.goto("/?q=cat")
    wait_for_results(page, "results for “cat”")
    picked = result_ids(page)[3]
    page.locator("#results a").nth(3).click()
    wait_for_results(page, "results for memes like the one you picked")
    assert page.url.endswith(f"/?like={quote(picked)}")
    assert result_ids(page)[0] == picked
    assert page.locator("#query").input_value() == ""


def test_results_work_from_the_keyboard_and_escape_clears(page) -> None:
    page.goto("/?q=surprised")
    wait_for_results(page, "results for “surprised”")
    second = result_ids(page)[1]
    page.locator("#results a").nth(1).focus()
    page.keyboard.press("Enter")
    wait_for_results(page, "results for memes like the one you picked")
    assert result_ids(page)[0] == second
    page.keyboard.press("Escape")
    assert page.locator("#results li").count() == 0
    assert page.url.endswith("/") and "?" not in page.url
    assert page.locator("#query").evaluate("el => el === document.activeElement")


def test_reloading_a_shared_url_reruns_the_search(page) -> None:
    page.goto("/?q=distracted+boyfriend")
    wait_for_results(page, "results for “distracted boyfriend”")
    first_visit = result_ids(page)
    page.reload()
    wait_for_results(page, "results for “distracted boyfriend”")
    assert result_ids(page) == first_visit
    assert page.locator("#query").input_value() == "distracted boyfriend"
    page.goto(f"/?like={quote(file_id(DRAKE))}")
    wait_for_results(page, "results for memes like the one you picked")
    assert result_ids(page)[0] == file_id(DRAKE)


def test_a_bad_upload_shows_an_error_and_the_page_still_works(page, tmp_path) -> None:
    fake = tmp_path / "not-a-meme.jpg"
    fake.write_text("this is text, not a JPEG\n")
    page.goto("/")
    page.locator("#image").set_input_files(str(fake))
    status = page.locator("#status.error")
    status.wait_for()
    assert "not-a-meme.jpg" in status.inner_text() and "not an image" in status.inner_text()
    assert page.locator("#results li").count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "test_a_bad_upload_error_message.png"))
    page.locator("#query").fill("success kid")
    page.keyboard.press("Enter")
    wait_for_results(page, "results for “success kid”")
    assert page.locator("#results li").count() == 24
    assert "error" not in (page.locator("#status").get_attribute("class") or "")


def http_get(service, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """The path goes out exactly as written: no client-side `..` clean-up."""
    connection = http.client.HTTPConnection("127.0.0.1", service.http_port, timeout=60)
    connection.request("GET", path, headers=headers or {})
    reply = connection.getresponse()
    body = reply.read()
    connection.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, body


def test_thumbnails_are_served_by_indexed_id_with_cache_headers(service, indexed) -> None:
    status, headers, body = http_get(service, f"/thumbnails/{file_id(DRAKE)}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert body[:3] == b"\xff\xd8\xff" and len(body) < 40_000
    assert "max-age" in headers["cache-control"]
    again, _, empty = http_get(service, f"/thumbnails/{file_id(DRAKE)}",
                               {"If-None-Match": headers["etag"]})
    assert again == 304 and empty == b""


@pytest.mark.parametrize("path", [
    "/thumbnails/0123456789abcdef0123456789abcdef",
    "/thumbnails/not-indexed",
])
def test_thumbnails_of_unknown_ids_are_404(service, indexed, path) -> None:
    assert http_get(service, path)[0] == 404


@pytest.mark.parametrize("path", [
    "/thumbnails/../../etc/passwd",
    "/thumbnails/..%2F..%2Fetc%2Fpasswd",
    "/thumbnails/%2Fetc%2Fpasswd",
    "/static/..%2F..%2Fmemeflow%2Fweb.py",
])
def test_paths_named_by_the_client_are_refused(service, indexed, path) -> None:
    status, _, body = http_get(service, path)
    assert status in (400, 404)
    assert b"root:" not in body and b"import" not in body


def test_replies_never_carry_thumbnails(service, indexed) -> None:
    replies = indexed._post("/index", [MemeDoc(blob=(MEMES / "drake" / "yes.jpg").read_bytes())])
    assert replies[0].error is None and replies[0].thumbnail is None
    request = urllib.request.Request(
        f"{service.http}/search", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"data": [{"text": "drake"}], "parameters": {"top_k": 3}}).encode(),
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        text = reply.read().decode()
    doc = json.loads(text)["data"][0]
    assert len(doc["matches"]) == 3 and doc.get("thumbnail") is None
    assert "/9j/" not in text  # no base64 JPEG anywhere in the reply


def test_search_by_id_over_grpc_and_unknown_ids_say_so(indexed) -> None:
    found = indexed._post("/search", [MemeDoc(id=file_id(DRAKE))], top_k=3)[0]
    assert found.matches[0].id == file_id(DRAKE) and found.matches[0].score > 0.999
    missing = indexed._post("/search", [MemeDoc(id="never-indexed")], top_k=3)[0]
    assert "no indexed document has id 'never-indexed'" in missing.error


def test_delete_removes_the_thumbnail(indexed) -> None:
    victim = MEMES / "drake" / "beat.jpg"
    ask = [MemeDoc(id=file_id(victim))]
    assert indexed._post("/thumbnail", ask)[0].thumbnail
    assert indexed.delete([file_id(victim)]) == 1
    assert len(indexed._post("/thumbnail", ask)) == 0


def test_a_meme_found_by_its_words_says_so(page, indexed) -> None:
    """A meme whose words were read (stored here through /upsert, as OCR would) and match
    the query shows those words on its card; pictures found by CLIP show none."""
    vector = np.random.default_rng(9).standard_normal(512).astype(np.float32)
    words = "ONE DOES NOT SIMPLY\nWALK INTO MORDOR"
    (stored,) = indexed.upsert([MemeDoc(id="words-probe", embedding=vector, words=words)])
    assert stored.error is None
    try:
        page.goto("/?q=one+does+not+simply+walk+into+mordor")
        wait_for_results(page, "results for")
        first = page.locator("#results li").first
        assert first.locator("a").get_attribute("data-id") == "words-probe"
        shown = first.locator(".words").inner_text()
        assert shown == "words: “ONE DOES NOT SIMPLY WALK INTO MORDOR”"
        assert page.locator("#results .words").count() == 1
    finally:
        indexed.delete(["words-probe"])


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory) -> Iterator[Service]:
    """A second Flow that requires an API key, with a few memes indexed by the CLI."""
    with serving(tmp_path_factory.mktemp("keyed"), MEMEFLOW_API_KEY=API_KEY) as running:
        run = running.cli("index", "-q", str(MEMES / "drake"), str(MEMES / "doge"))
        assert run.returncode == 0, run.stderr
        yield running


def test_a_service_with_an_api_key_asks_the_page_for_it(browser, keyed_service) -> None:
    context = browser.new_context(base_url=keyed_service.http)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/?q=drake")
        page.wait_for_function("() => !document.getElementById('key').hidden")
        assert "needs this memeflow's API key" in page.locator("#status").inner_text()
        assert page.locator("#results li").count() == 0
        page.locator("#key-input").fill("not the key")
        page.keyboard.press("Enter")
        page.wait_for_function("() => !document.getElementById('key').hidden")
        page.wait_for_function("() => document.getElementById('status').textContent"
                               ".includes('was not accepted')")
        page.locator("#key-input").fill(API_KEY)
        page.keyboard.press("Enter")
        wait_for_results(page, "results for")
        assert page.locator("#key").is_hidden() and page.locator("#results li").count() > 0
        page.wait_for_function(  # thumbnails need the key too: the cookie carries it
            "() => [...document.querySelectorAll('#results img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "test_api_key_prompt.png"), full_page=True)
        context.close()
