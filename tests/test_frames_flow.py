"""`memeflow index` on a folder of stills, animated GIFs and videos, through a running
service: every file is accounted for (indexed, skipped or failed with its reason), and a
video is one document."""

import json
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

    with serving(tmp_path) as service:
        run = service.cli("index", "--json", str(folder))
        assert run.returncode == 1, run.stderr  # some files failed: exit code 1
        report = json.loads(run.stdout)
        assert report["encoded"] == 7 and report["skipped"] == 1
        failed = {Path(item["file"]).name: item["reason"] for item in report["failed"]}
        assert set(failed) == {"broken.mp4", "song.mp4"}
        assert "truncated or corrupt video" in failed["broken.mp4"]
        assert "no video stream" in failed["song.mp4"]
        assert all("\n" not in reason for reason in failed.values())
        count = service.cli("count", "--json")
        assert json.loads(count.stdout) == {"count": 7}  # a video is one document

        again = service.cli("index", "--json", str(folder))  # nothing new: all unchanged
        report = json.loads(again.stdout)
        assert report["unchanged"] == 7 and report["encoded"] == 0

        client = MemeClient(service.env["MEMEFLOW_HOST"])
        (reply,) = client.post("/index", [{"id": "clip", "blob": mp4}])
        assert reply.get("error") is None
        # a reply carries no vectors, nor the frames' vectors and times
        assert {"embedding", "frames", "frame_ms", "blob", "thumbnail"}.isdisjoint(
            name for name, value in reply.items() if value is not None)
