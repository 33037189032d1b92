"""The search page in a real browser (Debian's Chromium driven by Playwright), and the
gateway routes behind it: thumbnails and full-size files by id only, replies without
image bytes, plain GET /count and /status, a failed one-document request as a 400.

One Flow serves the module with the 260 shared memes indexed, allowed to read only the
`drake` folder (MEMEFLOW_ROOTS), so both a meme whose file is served and one whose is not
are on the page; a second Flow (API key, no roots) is the default of a service that reads
no files. Every browser test saves a screenshot to test-artifacts/screenshots/<test>.png,
kept by CI.
"""

import http.client
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from memeflow.client import MemeClient
from memeflow.client.files import file_id
from memeflow.documents import MemeDoc
from memeflow.formats import FORMAT_NAMES, IMAGE_SUFFIXES
from tests.conftest import MEMES, REPO, Service, image_uri, serving

pytestmark = pytest.mark.flow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
DRAKE = MEMES / "drake" / "default.jpg"
DOGE = MEMES / "doge" / "default.jpg"
ROOT = MEMES / "drake"  # the only folder the module's service may read
API_KEY = "page-test-key"
TIMEOUT_MS = 90_000  # an image search on two busy cores takes seconds, not minutes
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    """The module's Flow: it may read (and so serve) the files of ROOT only."""
    with serving(tmp_path_factory.mktemp("service"), MEMEFLOW_ROOTS=str(ROOT)) as running:
        yield running


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
    viewport = getattr(request, "param", None) or {"width": 1280, "height": 900}
    context = browser.new_context(base_url=service.http, viewport=viewport)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def result_ids(page) -> list[str]:
    return page.locator("#results a.like").evaluate_all("links => links.map(a => a.dataset.id)")


def card_of(page, doc_id: str):
    return page.locator(f"#results li[data-id='{doc_id}']")


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
    assert first.locator(".meta").inner_text().startswith("#1 · picture ")
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
    assert page.locator("#results .meta").first.inner_text().startswith("#1 · picture 1.000")


def test_clicking_a_result_searches_more_like_it(page) -> None:
    page.goto("/?q=cat")
    wait_for_results(page, "results for “cat”")
    picked = result_ids(page)[3]
    page.locator("#results a.like").nth(3).click()
    wait_for_results(page, "results for memes like the one you picked")
    assert page.url.endswith(f"/?like={quote(picked)}")
    assert result_ids(page)[0] == picked
    assert page.locator("#query").input_value() == ""


def test_results_work_from_the_keyboard_and_escape_clears(page) -> None:
    page.goto("/?q=surprised")
    wait_for_results(page, "results for “surprised”")
    second = result_ids(page)[1]
    page.locator("#results a.like").nth(1).focus()
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


def test_a_meme_found_by_its_words_says_so_and_ranks_show_the_order(page, indexed) -> None:
    """A meme whose words were read (stored here through /upsert, as OCR would) and match
    the query shows those words on its card; pictures found by CLIP show none. Its picture
    is the opposite of the query (cosine -1), yet the words rank it first: the cards number
    the order shown, and the cosine is labelled as the picture's."""
    query = "one does not simply walk into mordor"
    asked = indexed._post("/search", [MemeDoc(text=query)], top_k=1, return_embeddings=True)
    opposite = -np.asarray(asked[0].embedding, dtype=np.float32)
    words = "ONE DOES NOT SIMPLY\nWALK INTO MORDOR"
    (stored,) = indexed.upsert([MemeDoc(id="words-probe", embedding=opposite, words=words)])
    assert stored.error is None
    try:
        page.goto("/?q=one+does+not+simply+walk+into+mordor")
        wait_for_results(page, "results for")
        first = page.locator("#results li").first
        assert first.get_attribute("data-id") == "words-probe"
        shown = first.locator(".words").inner_text()
        assert shown == "words: “ONE DOES NOT SIMPLY WALK INTO MORDOR”"
        assert "Found by the words" in (first.locator(".words").get_attribute("title") or "")
        assert page.locator("#results .words").count() == 1
        ranks = page.locator("#results .rank").all_inner_texts()
        assert ranks == [f"#{n}" for n in range(1, 25)]
        scores = page.locator("#results .score").all_inner_texts()
        assert all(score.startswith("picture ") for score in scores)
        assert scores[0] == "picture -1.000" and float(scores[1].split()[1]) > -1
    finally:
        indexed.delete(["words-probe"])


def test_cards_show_the_memes_name_and_where_it_is(page) -> None:
    page.goto(f"/?like={quote(file_id(DRAKE))}")
    wait_for_results(page, "results for memes like the one you picked")
    first = card_of(page, file_id(DRAKE))
    assert first.locator(".name").inner_text() == "Drakeposting"  # from drake/config.yml
    assert first.locator(".meta").inner_text().endswith("drake/default.jpg")


def test_more_results_come_with_the_button_and_on_scroll(page, service, indexed) -> None:
    page.goto("/?q=a+cat")
    wait_for_results(page, "24 results for “a cat”")
    first_page = result_ids(page)
    # A click without scrolling there first: scrolling would load the next page by itself.
    page.locator("#more").dispatch_event("click")
    wait_for_results(page, "48 results for “a cat”")
    ids = result_ids(page)
    assert ids[:24] == first_page and len(set(ids)) == 48
    reply = json.loads(post(service, "/search", {"data": [{"text": "a cat"}],
                                                 "parameters": {"top_k": 24, "offset": 24}}))
    assert ids[24:] == [match["id"] for match in reply["data"][0]["matches"]]
    assert page.locator("#results .rank").nth(24).inner_text() == "#25"
    page.locator("#more").scroll_into_view_if_needed()  # scrolling down loads the next page
    wait_for_results(page, "72 results for “a cat”")
    assert len(set(result_ids(page))) == 72


@pytest.mark.parametrize("page", [{"width": 1280, "height": 2400}], indirect=True)
def test_a_screen_taller_than_a_page_of_results_fills_itself(page) -> None:
    page.goto("/?q=a+cat")
    page.wait_for_function("() => document.querySelectorAll('#results li').length >= 48")
    ids = result_ids(page)
    assert len(set(ids)) == len(ids)


def test_paging_stops_at_the_end_of_the_index(page, indexed) -> None:
    page.goto("/?q=a+dog")
    wait_for_results(page, "24 results")
    total = indexed.count()
    page.wait_for_function("""total => {  // scrolled to the bottom until every meme is shown
        window.scrollTo(0, document.body.scrollHeight);
        return document.querySelectorAll('#results li').length >= total;
    }""", arg=total, polling=500)
    wait_for_results(page, f"{total} results for “a dog”")
    assert page.locator("#more").is_hidden()
    assert len(set(result_ids(page))) == total
    assert "More below" not in page.locator("#status").inner_text()


def test_a_meme_under_the_roots_can_be_opened_downloaded_copied_and_dragged(page, service
                                                                              ) -> None:
    page.goto(f"/?like={quote(file_id(DRAKE))}")
    wait_for_results(page, "results for memes like the one you picked")
    drake = card_of(page, file_id(DRAKE))
    drake.locator(".actions .copy").wait_for()
    url = f"{service.http}/files/{file_id(DRAKE)}"
    assert drake.locator("a.open").get_attribute("href") == url
    assert drake.locator("a.open").get_attribute("target") == "_blank"
    assert drake.locator("a.download").get_attribute("download") == "default.jpg"
    with page.expect_download() as download:
        drake.locator("a.download").click()
    assert download.value.suggested_filename == "default.jpg"
    assert Path(download.value.path()).read_bytes() == DRAKE.read_bytes()
    with page.context.expect_page() as opened:
        drake.locator("a.open").click()
    assert opened.value.url == url
    opened.value.close()
    drake.locator(".copy").click()
    page.wait_for_function("id => document.querySelector(`li[data-id='${id}'] .copy`)"
                           ".textContent === 'Copied'", arg=file_id(DRAKE))
    copied = page.evaluate("""async () => {
        const [item] = await navigator.clipboard.read();
        const image = await createImageBitmap(await item.getType("image/png"));
        return { types: item.types, width: image.width, height: image.height };
    }""")
    with Image.open(DRAKE) as original:
        assert copied == {"types": ["image/png"], "width": original.width,
                          "height": original.height}
    dragged = drake.locator("img").evaluate("""img => {
        const data = new DataTransfer();
        img.dispatchEvent(new DragEvent("dragstart", { dataTransfer: data, bubbles: true }));
        return [img.draggable, data.getData("DownloadURL"), data.getData("text/uri-list")];
    }""")
    assert dragged == [True, f"image/jpeg:default.jpg:{url}", url]


def test_a_meme_outside_the_roots_offers_its_preview_only(page) -> None:
    page.goto(f"/?like={quote(file_id(DOGE))}")
    wait_for_results(page, "results for memes like the one you picked")
    doge = card_of(page, file_id(DOGE))
    doge.locator(".actions.unavailable").wait_for()
    assert doge.locator(".actions").inner_text() == "preview only"
    assert "outside the folders" in doge.locator(".actions").get_attribute("title")
    assert doge.locator("a.open, a.download, button.copy").count() == 0
    assert page.locator("#no-files").is_hidden()  # this service serves some files


@pytest.mark.parametrize("page", [PHONE], indirect=True)
def test_the_page_holds_at_phone_width(page) -> None:
    page.goto(f"/?like={quote(file_id(DRAKE))}")
    wait_for_results(page, "results for memes like the one you picked")
    card_of(page, file_id(DRAKE)).locator(".copy").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    controls = ["#query", "#search button[type=submit]", "label.upload", "#more",
                f"#results li[data-id='{file_id(DRAKE)}'] .copy"]
    for selector in controls:
        box = page.locator(selector).bounding_box()
        assert box is not None and box["width"] > 0, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)
    label = page.locator("label.upload")
    assert label.evaluate("el => el.scrollWidth <= el.clientWidth")  # its text is not cut off
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "test_phone_width_viewport.png"))


def test_random_weights_are_announced(page) -> None:
    page.goto("/")
    notice = page.locator("#random-weights")
    notice.wait_for()
    assert "random weights" in notice.inner_text() and "meaningless" in notice.inner_text()


def test_real_weights_show_no_notice(page, service) -> None:
    status = json.loads(http_get(service, "/status")[2])

    def real(route) -> None:
        route.fulfill(json={**status, "random_weights": False})

    page.route("**/status", real)
    page.goto("/?q=cat")
    wait_for_results(page, "results for")
    assert page.locator("#random-weights").is_hidden()


def test_the_upload_takes_every_format_the_server_reads(page, tmp_path) -> None:
    page.goto("/")
    accept = page.locator("#image").get_attribute("accept") or ""
    assert set(accept.split(",")) == IMAGE_SUFFIXES
    tiff = tmp_path / "drake.tiff"
    with Image.open(DRAKE) as original:
        original.save(tiff)
    page.locator("#image").set_input_files(str(tiff))
    wait_for_results(page, "results for your image (drake.tiff)")
    assert result_ids(page)[0] == file_id(DRAKE)
    svg = tmp_path / "vector.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')
    page.locator("#image").set_input_files(str(svg))
    status = page.locator("#status.error")
    status.wait_for()
    assert "vector.svg is not an image memeflow reads" in status.inner_text()
    assert FORMAT_NAMES in status.inner_text()


def post(service, endpoint: str, body: dict, headers: dict[str, str] | None = None) -> str:
    """The reply's text; an error status raises urllib.error.HTTPError."""
    request = urllib.request.Request(
        f"{service.http}{endpoint}", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        return reply.read().decode()


def test_full_size_files_come_only_from_the_roots(service, indexed) -> None:
    status, headers, body = http_get(service, f"/files/{file_id(DRAKE)}")
    assert status == 200 and body == DRAKE.read_bytes()
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-disposition"].startswith('inline; filename="default.jpg"')
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, _ = http_get(service, f"/files/{file_id(DRAKE)}?download=1")
    assert status == 200 and headers["content-disposition"].startswith("attachment;")
    status, _, body = http_get(service, f"/files/{file_id(DOGE)}")
    assert status == 403 and b"outside the folders" in body and b"MEMEFLOW_ROOTS" in body
    assert http_get(service, "/files/0123456789abcdef0123456789abcdef")[0] == 404
    reply = json.loads(post(service, "/files", {"ids": [file_id(DRAKE), file_id(DOGE), "nope"]}))
    assert reply["files"][file_id(DRAKE)] is None
    assert "outside the folders" in reply["files"][file_id(DOGE)]
    assert "no indexed document" in reply["files"]["nope"]


@pytest.mark.parametrize("uri", [
    "/etc/passwd", "file:///etc/passwd", f"{ROOT}/../../../../../../etc/passwd",
    f"{ROOT}/../doge/default.jpg",
])
def test_files_named_by_a_stored_uri_outside_the_roots_are_refused(service, indexed, uri
                                                                   ) -> None:
    """A client may store any uri with its own vector (/upsert): the gateway still serves
    only what lies under the roots once `..` and links are resolved."""
    vector = np.random.default_rng(3).standard_normal(512).astype(np.float32)
    (stored,) = indexed.upsert([MemeDoc(id="uri-probe", uri=uri, embedding=vector)])
    assert stored.error is None
    try:
        status, _, body = http_get(service, "/files/uri-probe")
        assert status == 403 and b"outside the folders" in body
        assert b"root:" not in body and b"\xff\xd8" not in body
    finally:
        indexed.delete(["uri-probe"])


@pytest.mark.parametrize("path", [
    "/files/../../etc/passwd", "/files/..%2F..%2Fetc%2Fpasswd", "/files/%2Fetc%2Fpasswd",
])
def test_files_by_path_are_refused(service, indexed, path) -> None:
    status, _, body = http_get(service, path)
    assert status in (400, 404) and b"root:" not in body


def test_favicon_is_served_from_memory(service, indexed) -> None:
    status, headers, body = http_get(service, "/favicon.ico")
    assert status == 200 and headers["content-type"] == "image/vnd.microsoft.icon"
    with Image.open(io.BytesIO(body)) as icon:
        assert icon.format == "ICO"


def test_count_and_status_are_plain_gets(service, indexed) -> None:
    status, _, body = http_get(service, "/count")
    assert status == 200 and json.loads(body) == {"count": indexed.count()}
    status, _, body = http_get(service, "/status")
    answer = json.loads(body)
    assert status == 200 and answer["count"] == indexed.count() and answer["dim"] == 512
    assert answer["random_weights"] is True and answer["serves_files"] is True
    assert answer["model"] == indexed._post("/status", [])[0].tags["model"]


def test_one_failed_document_is_a_400_and_a_batch_keeps_its_errors(service, indexed) -> None:
    broken = "data:image/jpeg;base64,aGVsbG8="
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(service, "/index", {"data": [{"uri": broken}]})
    answer = json.loads(refused.value.read())
    assert refused.value.code == 400
    assert answer["detail"].startswith("data:image/jpeg;base64,… (5 bytes): not an image")
    assert answer["data"][0]["error"] == answer["detail"]
    with pytest.raises(urllib.error.HTTPError) as unknown:
        post(service, "/search", {"data": [{"id": "never-indexed"}]})
    assert unknown.value.code == 400
    detail = json.loads(unknown.value.read())["detail"]
    assert "no indexed document has id 'never-indexed'" in detail
    good = image_uri(MEMES / "doge" / "growl.jpg")
    batch = json.loads(post(service, "/index", {"data": [{"uri": broken}, {"uri": good}]}))["data"]
    assert "not an image" in batch[0]["error"] and batch[1]["error"] is None
    assert indexed.delete([batch[1]["id"]]) == 1
    # The Python client over HTTP gets the failed document back, as over gRPC. (In a
    # thread of its own: Jina's client loses errors raised under Playwright's event loop.)
    over_http = MemeClient(service.http)
    with ThreadPoolExecutor(1) as thread:
        (reply,) = thread.submit(over_http._post, "/index", [MemeDoc(uri=broken)]).result()
    assert "not an image" in reply.error


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


def test_a_service_that_reads_no_files_offers_previews_only(browser, keyed_service) -> None:
    doc_id = file_id(MEMES / "drake" / "default.jpg")
    key = {"x-api-key": API_KEY}
    assert http_get(keyed_service, f"/files/{doc_id}")[0] == 401  # the key first
    status, _, body = http_get(keyed_service, f"/files/{doc_id}", key)
    assert status == 403 and b"MEMEFLOW_ROOTS is not set" in body
    assert json.loads(http_get(keyed_service, "/status", key)[2])["serves_files"] is False
    assert http_get(keyed_service, "/favicon.ico")[0] == 200  # open, like the page's files
    context = browser.new_context(base_url=keyed_service.http)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies([{"name": "memeflow_key", "value": API_KEY, "url": keyed_service.http}])
    page = context.new_page()
    try:
        page.goto("/?q=drake")
        wait_for_results(page, "results for")
        page.locator("#no-files").wait_for()
        assert "MEMEFLOW_ROOTS is not set" in page.locator("#no-files").inner_text()
        page.locator("#results .actions.unavailable").first.wait_for()
        assert page.locator("#results a.open, #results button.copy").count() == 0
        assert page.locator("#results .actions").all_inner_texts() == (
            ["preview only"] * page.locator("#results li").count())
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "test_previews_only.png"), full_page=True)
        context.close()
