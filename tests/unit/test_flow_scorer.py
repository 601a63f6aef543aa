"""Flow magnitude and camera motion on constructed frames: translated and zoomed textures, still frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from components.curation.scorer import ClipFrames
from components.curation.scorers import build
from components.curation.scorers.camera import CameraConfig, CameraFit, classify_camera, fit_camera
from components.curation.scorers.flow import FlowConfig, FlowScorer, frame_pairs


def texture(height: int, width: int, seed: int = 0, cell: int = 6) -> np.ndarray:
    """Smooth random blobs (H, W, 3) uint8: 2D structure everywhere, so flow is defined at every pixel."""
    coarse = np.random.default_rng(seed).random((height // cell + 3, width // cell + 3)).astype(np.float32)
    big = cv2.resize(coarse, ((width // cell + 3) * cell, (height // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
    grey = np.clip(big[cell:cell + height, cell:cell + width] * 200 + 28, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def translated(dx: int, dy: int, n: int = 6, height: int = 96, width: int = 128) -> np.ndarray:
    """n frames of a texture whose content moves (dx, dy) pixels per frame (x right, y down)."""
    margin = n * max(abs(dx), abs(dy)) + 1
    canvas = texture(height + 2 * margin, width + 2 * margin)
    # content moving right by dx = the window moving left by dx
    return np.stack([canvas[margin - t * dy:margin - t * dy + height, margin - t * dx:margin - t * dx + width]
                     for t in range(n)])


def zoomed(rate: float, n: int = 6, height: int = 96, width: int = 128) -> np.ndarray:
    """n frames scaled about the centre by rate**t (rate > 1: content expands)."""
    base = texture(height, width, seed=1)
    centre = ((width - 1) / 2, (height - 1) / 2)
    return np.stack([cv2.warpAffine(base, cv2.getRotationMatrix2D(centre, 0, rate ** t), (width, height),
                                    flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT) for t in range(n)])


def clip(frames: np.ndarray, fps: float = 24.0) -> ClipFrames:
    return ClipFrames("c", frames, list(range(100, 100 + len(frames))), fps)


def farneback(**overrides) -> FlowScorer:
    return FlowScorer(FlowConfig(method="farneback", **overrides))


@pytest.mark.parametrize("dx, dy, label", [(3, 0, "pan_left"), (-3, 0, "pan_right"), (0, 3, "tilt_up"),
                                           (0, -3, "tilt_down")])
def test_translated_texture_gives_direction_and_shift(dx, dy, label):
    # reference short side = the frames' short side, so flow is plain pixels per frame
    row = farneback(reference_short_side=96).score([clip(translated(dx, dy))])[0]
    assert row["cmotion"] == label, row
    assert row["flow"] == pytest.approx(3.0, rel=0.08), row


def test_flow_is_normalised_to_the_reference_short_side():
    frames = translated(2, 0)
    row = farneback().score([clip(frames)])[0]  # reference 256, frames 96 high
    assert row["flow"] == pytest.approx(2.0 * 256 / 96, rel=0.08), row
    # the same motion at twice the size: twice the pixels, the same normalised flow
    big = np.stack([cv2.resize(f, (256, 192), interpolation=cv2.INTER_CUBIC) for f in frames])
    row_big = farneback(short_side=192).score([clip(big)])[0]
    assert row_big["flow"] == pytest.approx(row["flow"], rel=0.08), (row, row_big)


def test_flow_is_per_frame_when_pairs_span_several_frames():
    # 24 fps * 0.125 s = 3 frames between the two frames of a pair: 6 px per pair, 2 px per frame
    row = farneback(reference_short_side=96, pair_seconds=0.125).score([clip(translated(2, 0, n=8))])[0]
    assert row["flow"] == pytest.approx(2.0, rel=0.08), row
    assert row["cmotion"] == "pan_left"


@pytest.mark.parametrize("rate, label", [(1.04, "zoom_in"), (1 / 1.04, "zoom_out")])
def test_zoomed_texture_gives_zoom(rate, label):
    assert farneback().score([clip(zoomed(rate))])[0]["cmotion"] == label


def test_identical_frames_are_static_with_zero_flow():
    frames = np.repeat(texture(96, 128)[None], 5, axis=0)
    row = farneback().score([clip(frames)])[0]
    assert row["cmotion"] == "static"
    assert row["flow"] == pytest.approx(0.0, abs=0.01)  # px/frame at 256: numerical noise only


def test_single_frame_clip_has_no_motion():
    assert farneback().score([clip(texture(96, 128)[None])])[0] == {"flow": 0.0, "cmotion": "static"}


def test_frame_pairs_spread_over_the_clip():
    assert frame_pairs(list(range(10)), fps=24, pairs=4, pair_seconds=0) == [(0, 1), (3, 4), (5, 6), (8, 9)]
    assert frame_pairs(list(range(10)), fps=24, pairs=2, pair_seconds=0.125) == [(0, 3), (6, 9)]
    assert frame_pairs(list(range(3)), fps=30, pairs=4, pair_seconds=1.0) == [(0, 2)]  # stride capped by the clip
    assert frame_pairs([7], fps=30, pairs=4, pair_seconds=0) == []


def test_fit_camera_ignores_a_moving_subject():
    flow = np.zeros((60, 80, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.5, -0.5  # the camera's motion everywhere ...
    flow[10:30, 10:30] = (-4.0, 3.0)  # ... except on a subject moving its own way (8% of the frame)
    fit = fit_camera(flow, CameraConfig())
    assert (fit.dx, fit.dy, fit.scale) == pytest.approx((1.5, -0.5, 1.0), abs=1e-3)
    assert fit.inlier_frac == pytest.approx(1 - 25 / 300, abs=0.02)  # 5x5 of the 15x20 grid points are outliers


def test_classify_camera_thresholds_and_precedence():
    cfg = CameraConfig(static_speed=0.5, zoom_speed=1.0)
    assert classify_camera(0.4, -0.4, 0.9, cfg) == "static"
    assert classify_camera(0.6, 0.0, 0.0, cfg) == "pan_left"
    assert classify_camera(-0.6, 0.5, 0.0, cfg) == "pan_right"
    assert classify_camera(0.2, -0.7, 0.0, cfg) == "tilt_down"
    assert classify_camera(0.0, 0.0, -1.2, cfg) == "zoom_out"
    assert classify_camera(2.0, 0.0, 1.5, cfg) == "pan_left"  # the larger motion wins
    assert CameraFit(0, 0, 1.01, 1).corner_zoom(30, 40) == pytest.approx(0.01 * 25)


def test_farneback_provenance_and_registry():
    scorer = build("flow", {"method": "farneback", "pairs": 2})
    assert isinstance(scorer, FlowScorer) and scorer.cfg.pairs == 2
    assert (scorer.name, scorer.columns, scorer.num_frames, scorer.short_side) == ("flow", ("flow", "cmotion"), 0, 96)
    assert scorer.provenance() == {"scorer": "flow", "method": "farneback (offline stand-in for RAFT)",
                                   "weights": "none", "version": "1"}


def test_required_raft_without_weights_names_the_file(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("REELFORGE_WEIGHTS", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match="raft-things: .*raft/raft-things.pth"):
        FlowScorer(FlowConfig(method="raft"))
    assert FlowScorer(FlowConfig(method="auto")).raft is None  # auto: the offline method, said in provenance
