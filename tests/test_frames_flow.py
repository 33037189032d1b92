"""`memeflow index` on a folder of stills, animated GIFs and videos, through a running
service: every file is accounted for (indexed, skipped or failed with its reason), a video
is one document, and a search by a picture finds the clip it shows in, at that moment,
also after the clip was moved."""

import json
import re
import shutil
from pathlib import Path

import pytest
from clips import animated_bytes, audio_only_bytes, video_bytes
from PIL import Image

from memeflow.client import MemeClient
from tests.conftest import MEMES, serving

pytestmark = pytest.mark.flow

DRAKE, AAG, ACKBAR = (Image.open(MEMES / name / "default.jpg") for name in
                      ("drake", "aag", "ackbar"))
# Pictures each shown by one file only: DOGE in a clip between seconds 6 and 8, BILBO as
# the last frame of a GIF.
DOGE, BILBO, BENDER, AWKWARD = (MEMES / name / "default.jpg" for name in
                                ("doge", "bilbo", "bender", "awkward"))


def test_a_folder_of_stills_gifs_and_videos_is_accounted_for_file_by_file(
        tmp_path: Path) -> None:
    folder = tmp_path / "memes"
    (folder / "clips").mkdir(parents=True)
    shutil.copy(MEMES / "drake" / "default.jpg", folder / "drake.jpg")
    shutil.copy(MEMES / "aag" / "default.jpg", folder / "aag.jpg")
    shutil.copy(MEMES / "bongo" / "default.gif", folder / "bongo.gif")
    (folder / "made.gif").write_bytes(animated_bytes([(DRAKE, 0.3), (AAG, 0.3)], "GIF"))
    mp4 = video_bytes([(DRAKE, 1), (AAG, 1), (ACKBAR, 1)], ".mp4", fps=3)
    (folder / "clips" / "three.mp4").write_bytes(mp4)
    (folder / "clips" / "two.webm").write_bytes(video_bytes([(AAG, 1), (DRAKE, 1)], ".webm",
                                                            fps=3))
    (folder / "clips" / "also.MOV").write_bytes(video_bytes([(ACKBAR, 1)], ".mov", fps=3))
    (folder / "clips" / "broken.mp4").write_bytes(mp4[: len(mp4) // 2])
    (folder / "clips" / "song.mp4").write_bytes(audio_only_bytes())
    (folder / "clips" / "._three.mp4").write_bytes(b"\0\5\26\7AppleDouble")  # macOS debris
    (folder / "clips" / "notes.txt").write_text("not a meme")
    others = [Image.open(path) for path in (BENDER, AWKWARD)]
    (folder / "clips" / "reaction.webm").write_bytes(video_bytes(
        [(others[0], 3), (others[1], 3), (Image.open(DOGE), 2), (others[0], 2)], ".webm"))
    (folder / "punchline.gif").write_bytes(animated_bytes(
        [(others[1], 0.3), (others[0], 0.3), (Image.open(BILBO), 0.1)], "GIF"))

    with serving(tmp_path) as service:
        run = service.cli("index", "--json", str(folder))
        assert run.returncode == 1, run.stderr  # some files failed: exit code 1
        report = json.loads(run.stdout)
        assert report["encoded"] == 9 and report["skipped"] == 1
        failed = {Path(item["file"]).name: item["reason"] for item in report["failed"]}
        assert set(failed) == {"broken.mp4", "song.mp4"}
        assert "truncated or corrupt video" in failed["broken.mp4"]
        assert "no video stream" in failed["song.mp4"]
        assert all("\n" not in reason for reason in failed.values())
        count = service.cli("count", "--json")
        assert json.loads(count.stdout) == {"count": 9}  # a video is one document

        again = service.cli("index", "--json", str(folder))  # nothing new: all unchanged
        report = json.loads(again.stdout)
        assert report["unchanged"] == 9 and report["encoded"] == 0

        client = MemeClient(service.env["MEMEFLOW_HOST"])
        (best,) = client.search_image(DOGE, top_k=1)  # shown from 6 s to 8 s, nowhere else
        assert best["uri"] == str(folder / "clips" / "reaction.webm")
        assert 6000 <= best["frame_ms"] <= 8000
        (best,) = client.search_image(BILBO, top_k=1)  # the GIF's last frame, at 600 ms
        assert best["uri"] == str(folder / "punchline.gif") and best["frame_ms"] == 600

        # moved: re-filed without encoding, with every frame
        (folder / "clips" / "reaction.webm").rename(folder / "moved.webm")
        report = json.loads(service.cli("index", "--json", str(folder)).stdout)
        assert (report["moved"], report["encoded"]) == (1, 0)
        found = service.cli("search", "--image", str(DOGE), "-k", "1", "--preview", "never")
        first = found.stdout.splitlines()[0]  # the moment of the best frame, as people read it
        assert re.search(r"/moved\.webm  at 0:0(6\.\d\d|7\.\d\d|8\.00)$", first), first
        (best,) = client.search_image(DOGE, top_k=1)
        assert best["uri"] == str(folder / "moved.webm") and 6000 <= best["frame_ms"] <= 8000
        (reply,) = client.post("/index", [{"id": "clip", "blob": mp4}])
        assert reply.get("error") is None
        # a reply carries no vectors, nor the frames' vectors and times
        assert {"embedding", "frames", "frame_ms", "blob", "thumbnail"}.isdisjoint(
            name for name, value in reply.items() if value is not None)
