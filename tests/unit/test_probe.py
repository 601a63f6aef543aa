"""probe(): facts equal the synthetic ground truth; every bad input raises its quarantine kind naming the file."""
from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import fsspec
import numpy as np
import pytest

from components.data.probe import Limits, ProbeError, media_kind, probe
from components.data.synth import SynthConfig, synthesize

SMALL = dict(n_videos=3, n_images=2, shots_per_video=(2, 2), shot_seconds=(0.7, 1.0), fps_choices=[8, 12, 30],
             frame_sizes=[(128, 72), (72, 128), (96, 96)], image_sizes=[(96, 64), (64, 96)])
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("probe")
    return root, synthesize(root, SynthConfig(seed=11, **SMALL))


def _encode(path: Path, width: int, height: int, frames: int = 6, rotation: int | None = None,
            faststart: bool = False) -> bytes:
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 10 * i % 250, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path.read_bytes()


@pytest.mark.parametrize("decode", ["full", "headers"])
def test_probe_matches_ground_truth(corpus, decode):
    root, gt = corpus
    for video in gt["videos"]:
        path = root / video["path"]
        r = probe(str(path), decode=decode)
        assert (r.media, r.num_frames, r.fps, r.width, r.height) == (
            "video", video["num_frames"], video["fps"], video["width"], video["height"])
        assert (r.codec, r.rotation, r.size_bytes) == ("h264", 0, path.stat().st_size)
        assert r.duration == pytest.approx(video["num_frames"] / video["fps"])
        assert r.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for image in gt["images"]:
        r = probe(str(root / image["path"]), decode=decode)
        codec = "jpeg" if image["path"].endswith(".jpg") else "png"
        assert (r.media, r.num_frames, r.width, r.height, r.codec, r.fps) == (
            "image", 1, image["width"], image["height"], codec, None)


def test_planted_bad_files_raise_their_kind(corpus):
    root, gt = corpus
    assert len(gt["bad_files"]) == 7
    for bad in gt["bad_files"]:
        path = root / bad["path"]
        with pytest.raises(ProbeError) as info:
            probe(str(path))
        err = info.value
        assert err.kind == bad["kind"], (bad, str(err))
        assert str(path) in str(err)
        assert err.size_bytes == path.stat().st_size
        assert err.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ProbeError, match="file is empty") as info:
        probe(str(root / "videos/upload_01.mp4"))
    assert info.value.sha256 == EMPTY_SHA
    with pytest.raises(ProbeError, match=r"2x2 has a side outside \[32, 8192\]"):
        probe(str(root / "videos/upload_06.mp4"))


def test_display_rotation_swaps_width_and_height(tmp_path):
    _encode(tmp_path / "r.mp4", 96, 64, rotation=90)
    r = probe(str(tmp_path / "r.mp4"))
    assert (r.rotation, r.width, r.height, r.num_frames) == (90, 64, 96, 6)


def test_truncation_detected_whether_index_is_first_or_last(tmp_path):
    data = _encode(tmp_path / "fast.mp4", 96, 64, frames=24, faststart=True)
    (tmp_path / "cut_fast.mp4").write_bytes(data[: len(data) * 8 // 10])  # index first: the payload is short
    with pytest.raises(ProbeError, match="'mdat' box at byte .* declares") as info:
        probe(str(tmp_path / "cut_fast.mp4"))
    assert info.value.kind == "truncated"
    data = _encode(tmp_path / "slow.mp4", 96, 64, frames=24)
    moov = data.rfind(b"moov") - 4  # index last: cut exactly where it begins, so every box is whole
    (tmp_path / "cut_slow.mp4").write_bytes(data[:moov])
    with pytest.raises(ProbeError, match="no 'moov' index") as info:
        probe(str(tmp_path / "cut_slow.mp4"))
    assert info.value.kind == "truncated"


def test_image_defects(tmp_path):
    ok, png = cv2.imencode(".png", np.full((64, 80, 3), 90, np.uint8))
    (tmp_path / "cut.png").write_bytes(png.tobytes()[: len(png) // 2])
    (tmp_path / "note.png").write_text("not an image")
    cv2.imwrite(str(tmp_path / "wide.png"), np.zeros((32, 256, 3), np.uint8))
    expected = {"cut.png": "truncated", "note.png": "not_media", "wide.png": "absurd_dimensions"}
    for name, kind in expected.items():
        with pytest.raises(ProbeError) as info:
            probe(str(tmp_path / name))
        assert (info.value.kind, name in str(info.value)) == (kind, True)
    with pytest.raises(ProbeError, match="aspect 8.0 > max_aspect 6.0"):
        probe(str(tmp_path / "wide.png"))
    assert probe(str(tmp_path / "wide.png"), limits=Limits(max_aspect=10)).width == 256


def test_limits_apply_to_video_headers(corpus):
    root, gt = corpus
    video = next(v for v in gt["videos"] if min(v["width"], v["height"]) == 72)
    with pytest.raises(ProbeError, match="outside \\[100, 8192\\]") as info:
        probe(str(root / video["path"]), limits=Limits(min_side=100))
    assert info.value.kind == "absurd_dimensions"


def test_remote_uri_through_fsspec(corpus):
    root, gt = corpus
    video = gt["videos"][0]
    fs = fsspec.filesystem("memory")
    fs.pipe("/probe-test/clip.mp4", (root / video["path"]).read_bytes())
    try:
        remote = probe("memory://probe-test/clip.mp4")
    finally:
        fs.rm("/probe-test", recursive=True)
    assert remote == probe(str(root / video["path"]))


def test_missing_file_is_unreadable_and_extensions_decide_media(tmp_path):
    with pytest.raises(ProbeError, match="gone.mp4: cannot read") as info:
        probe(str(tmp_path / "gone.mp4"))
    assert info.value.kind == "unreadable"
    assert [media_kind(p) for p in ("a/b.MP4", "c.jpeg", "d.txt", "e.mp4.txt")] == ["video", "image", None, None]


def test_exif_orientation_rotates_image(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    Image.new("RGB", (96, 48), (200, 10, 10)).save(tmp_path / "phone.jpg", exif=exif)
    r = probe(str(tmp_path / "phone.jpg"))
    assert (r.rotation, r.width, r.height, r.codec) == (90, 48, 96, "jpeg")
