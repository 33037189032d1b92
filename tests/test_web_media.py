"""Memes that move, on the search page in a real browser (Debian's Chromium, as in
test_web.py): an animated GIF plays on hover and after a first tap on a touch screen, and
a video hit opens in a player at the moment that matched (`frame_ms`).

One Flow serves the module, allowed to read a temporary folder that holds a copy of an
animated meme GIF, a still meme JPEG and a WebM video (VP8: Debian's Chromium plays it;
H.264 needs codecs that some Chromium builds leave out) made from two memes. The CLI
indexes the two images; the video is stored through /upsert with a vector of its own,
since this encoder reads no videos, and the page's /search replies get the video's
`frame_ms` added on their way to the page (Playwright's route), since this indexer
returns none: the reply is the real service's, with only that field filled in.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from clips import video_bytes
from PIL import Image

from memeflow.client import MemeClient
from memeflow.client.files import file_id
from tests.conftest import MEMES, Service, serving
from tests.test_web import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    SCREENSHOTS,
    TIMEOUT_MS,
    card_of,
    http_get,
    wait_for_results,
)

pytestmark = pytest.mark.flow

GIF = MEMES / "rollsafe" / "default.gif"  # 480 x 270, 29 frames: larger than its preview
STILL = MEMES / "drake" / "default.jpg"
DOGE = MEMES / "doge" / "default.jpg"  # the clip's first 4 s; STILL shows from 4 s to 8 s
LIKE = "results for memes like the one you picked"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    shutil.copy(GIF, folder / "rollsafe.gif")
    shutil.copy(STILL, folder / "drake.jpg")
    (folder / "clip.webm").write_bytes(video_bytes(
        [(Image.open(DOGE), 4), (Image.open(STILL), 4)], ".webm", side=96))
    return folder


def video_id(media: Path) -> str:
    return file_id(media / "clip.webm")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Iterator[Service]:
    with serving(tmp_path_factory.mktemp("service"), MEMEFLOW_ROOTS=str(media)) as running:
        yield running


@pytest.fixture(scope="module")
def indexed(service: Service, media: Path) -> MemeClient:
    run = service.cli("index", str(media))
    assert run.returncode == 0, run.stderr
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    assert client.count() == 3  # the GIF, the JPEG and the video (by its frames)
    return client


@pytest.fixture(scope="module")
def browser(indexed: MemeClient) -> Iterator:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see test_web.py)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, service: Service, request) -> Iterator:
    touch = getattr(request, "param", None) == "touch"
    options = {"viewport": PHONE, "has_touch": True, "is_mobile": True} if touch else {}
    context = browser.new_context(base_url=service.http, **options)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def preview_src(card) -> str | None:
    return card.locator("img").get_attribute("src")


def wait_for_the_original(page, doc_id: str) -> None:
    """The card's picture is the full-size file, loaded (the GIF's own 480 pixels)."""
    page.wait_for_function(
        """id => { const img = document.querySelector(`li[data-id='${id}'] img`);
                   return img.currentSrc.endsWith(`/files/${encodeURIComponent(id)}`)
                       && img.complete && img.naturalWidth === 480; }""",
        arg=doc_id,
    )


def test_hovering_an_animated_gif_plays_the_original(page, service: Service, media: Path
                                                     ) -> None:
    gif, still = file_id(media / "rollsafe.gif"), file_id(media / "drake.jpg")
    page.goto(f"/?like={quote(gif)}")
    wait_for_results(page, LIKE)
    card = card_of(page, gif)
    card.locator(".actions a.open").wait_for()  # the gateway serves the file
    assert preview_src(card) == f"/thumbnails/{quote(gif)}"
    card.locator("img").hover()
    wait_for_the_original(page, gif)
    served = page.evaluate("""async url => {
        const reply = await fetch(url);
        return [reply.headers.get("content-type"), (await reply.arrayBuffer()).byteLength];
    }""", f"{service.http}/files/{quote(gif)}")
    assert served == ["image/gif", GIF.stat().st_size]  # the animated file, all its frames
    page.mouse.move(1, 1)  # the pointer leaves: the still preview again
    assert preview_src(card) == f"/thumbnails/{quote(gif)}"
    jpeg = card_of(page, still)
    jpeg.locator(".actions a.open").wait_for()
    jpeg.locator("img").hover()  # a still image keeps its preview
    assert preview_src(jpeg) == f"/thumbnails/{quote(still)}"


@pytest.mark.parametrize("page", ["touch"], indirect=True)
def test_a_tap_plays_an_animated_gif_and_a_second_shows_more_like_it(page, media: Path
                                                                     ) -> None:
    gif, still = file_id(media / "rollsafe.gif"), file_id(media / "drake.jpg")
    page.goto(f"/?like={quote(still)}")
    wait_for_results(page, LIKE)
    card = card_of(page, gif)
    card.locator(".actions a.open").wait_for()
    card.locator("img").tap()
    wait_for_the_original(page, gif)
    assert page.url.endswith(f"/?like={quote(still)}")  # the first tap only played it
    card.locator("img").tap()
    page.wait_for_url(f"**/?like={quote(gif)}")


def test_a_video_opens_at_the_moment_that_matched(page, service: Service, media: Path
                                                 ) -> None:
    """Memes like the drake still: the clip, whose drake scene starts at 4 s, is a hit at
    the moment of its best frame (the real reply's frame_ms), and plays from there."""
    clip, still = video_id(media), file_id(media / "drake.jpg")
    with page.expect_response("**/search") as answer:
        page.goto(f"/?like={quote(still)}")
    (ms,) = [m["frame_ms"] for m in answer.value.json()["data"][0]["matches"] if m["id"] == clip]
    assert 4000 <= ms <= 8000
    wait_for_results(page, LIKE)
    card = card_of(page, clip)
    at = f"0:{ms // 1000:02d}"
    assert card.locator(".moment").inner_text() == f"▶ {at}"
    play = card.locator(".actions button.play")
    assert play.inner_text() == f"Play at {at}"
    assert card.locator(".actions .copy").count() == 0  # a clipboard takes pictures only
    url = f"{service.http}/files/{clip}"
    assert card.locator("a.open").get_attribute("href") == f"{url}#t={ms / 1000:g}"
    play.click()
    player = page.locator("#player")
    caption = player.locator(".caption").inner_text()
    assert caption == f"clip.webm at {at}, the moment that matched best"
    page.wait_for_function(  # it plays, in a browser that decodes VP8
        "() => { const v = document.querySelector('#player video');"
        " return !v.paused && v.played.length && v.currentTime > v.played.start(0); }")
    video = player.locator("video")
    assert video.evaluate("v => v.currentSrc") == url
    played = video.evaluate("v => [v.played.length, v.played.start(0)]")
    assert played[0] == 1 and abs(played[1] - ms / 1000) < 1e-3  # from that moment on
    page.keyboard.press("Escape")  # closes the player, and only the player
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v.paused && !v.getAttribute('src'); }")
    assert player.is_hidden() and card.is_visible() and page.url.endswith(f"?like={quote(still)}")


def test_the_service_serves_a_video_a_range_at_a_time(service: Service, indexed: MemeClient,
                                                     media: Path) -> None:
    """Through the whole gateway (API key and Host checks, Jina's app): what a browser's
    <video> asks for when it seeks."""
    data = (media / "clip.webm").read_bytes()
    status, headers, body = http_get(service, f"/files/{video_id(media)}",
                                     {"Range": "bytes=100-199"})
    assert (status, body) == (206, data[100:200])
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert (headers["content-type"], headers["accept-ranges"]) == ("video/webm", "bytes")
    status, headers, _ = http_get(service, f"/files/{video_id(media)}",
                                  {"Range": f"bytes={len(data)}-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{len(data)}")
