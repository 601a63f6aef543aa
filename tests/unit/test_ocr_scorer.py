"""OCR scorer: detector input sizes, burned-in text found with its area, clean frames empty, provenance pinned."""
from __future__ import annotations

import re

import numpy as np
import pytest

from components.curation.scorer import ClipFrames
from components.curation.scorers.ocr import DET_FILE, XGEN_AREA_FRAC, OcrConfig, OcrScorer, det_size, detector_path
from components.data.synth_shapes import background, draw_shape, draw_text
from components.hashing import file_sha256

TEXT_HEIGHT = 0.22  # of the frame height, as the synthetic corpus burns it in
TEXT_WIDTH = 0.92  # draw_text fits the line to at most this share of the width


@pytest.fixture(scope="module")
def scorer() -> OcrScorer:
    return OcrScorer()


def text_frame(width: int, height: int, text: str = "BREAKING NEWS") -> np.ndarray:
    img = background("ocean", width, height, seed=0)
    draw_text(img, text, TEXT_HEIGHT)
    return img


def clean_frame(width: int, height: int) -> np.ndarray:
    img = background("ocean", width, height, seed=0)
    draw_shape(img, "circle", "orange", width * 0.4, height * 0.5, 0.3 * min(width, height))
    return img


def test_detector_input_is_native_size_in_multiples_of_32_with_long_side_capped():
    cfg = OcrConfig()
    assert det_size(72, 128, cfg) == (64, 128)  # never enlarged
    assert det_size(96, 96, cfg) == (96, 96)
    assert det_size(1080, 1920, cfg) == (544, 960)  # long side 1920 -> 960 (PaddleOCR's limit), 540 -> 544
    assert det_size(96, 128, OcrConfig(det_max_upscale=2.0)) == (192, 256)


def test_xgen_rule_as_a_fraction():
    assert XGEN_AREA_FRAC == pytest.approx(20_000 / (1280 * 720))
    assert round(XGEN_AREA_FRAC * 100, 2) == 2.17


def test_burned_in_text_is_one_box_covering_the_text_line(scorer):
    row = scorer.score_frames(text_frame(256, 144)[None])
    expected = TEXT_HEIGHT * TEXT_WIDTH  # the text line's bounding box, as a share of the frame
    assert row["ocr_boxes"] == 1
    assert 0.5 * expected < row["ocr_area_frac"] < 1.5 * expected, row
    assert row["ocr_area"] == pytest.approx(row["ocr_area_frac"] * 256 * 144)


def test_area_fraction_holds_across_resolutions(scorer):
    small = scorer.score_frames(text_frame(128, 72)[None])["ocr_area_frac"]
    large = scorer.score_frames(text_frame(256, 144)[None])["ocr_area_frac"]
    assert abs(small - large) / large < 0.25, (small, large)
    assert min(small, large) > XGEN_AREA_FRAC  # the subtitle band fails xGen's rule at both sizes


def test_clean_frame_has_no_text(scorer):
    assert scorer.score_frames(clean_frame(256, 144)[None]) == {"ocr_boxes": 0.0, "ocr_area": 0.0,
                                                                "ocr_area_frac": 0.0}


def test_worst_keyframe_decides(scorer):
    frames = np.stack([clean_frame(256, 144), text_frame(256, 144), clean_frame(256, 144)])
    assert scorer.score_frames(frames) == scorer.score_frames(frames[1:2])


def test_score_follows_the_scorer_protocol(scorer):
    clips = [ClipFrames("a-000000-000010", text_frame(128, 72)[None], [0], 24.0),
             ClipFrames("b-000000-000010", clean_frame(96, 96)[None], [0], 24.0)]
    rows = scorer.score(clips)
    assert [set(r) for r in rows] == [set(scorer.columns)] * 2
    assert [r["ocr_boxes"] for r in rows] == [1.0, 0.0]
    assert (scorer.num_frames, scorer.short_side) == (3, 1080)


def test_provenance_names_the_onnx_file_and_its_sha256(scorer):
    prov = scorer.provenance()
    name, digest = prov["weights"].split("@")
    assert name == DET_FILE and re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == file_sha256(detector_path())
    assert "0.3" in prov["method"] and prov["scorer"] == "ocr"
