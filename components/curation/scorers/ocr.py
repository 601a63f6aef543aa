"""Burned-in text: the PP-OCRv4 text detector (shipped by rapidocr-onnxruntime) with DB post-processing on keyframes.

Columns, from the keyframe with the most text (text in any keyframe is a problem):
  ocr_boxes      text boxes whose mean DB probability is > box_thresh (Open-Sora counts DBNet++ boxes > 0.3)
  ocr_area       union area of those boxes in pixels of the frames the scorer receives: the clip's stored
                 resolution, since short_side is the split's shorter-side cap (1080) and frames are never upscaled
  ocr_area_frac  ocr_area / frame area. Filters should threshold this so one rule holds at every resolution.
xGen-VideoSyn-1 keeps clips whose text boxes total < 20,000 px at its 720p working size (1280x720): that is
XGEN_AREA_FRAC = 20,000 / 921,600 = 2.17% of the frame (45,000 px at 1080p, 200 px at 128x72).
The detector sees each frame at its own size, long side capped at det_max_side (PaddleOCR's det_limit_type
"max", 960) and never enlarged (det_max_upscale 1): on small frames blown up to PaddleOCR's other default (short
side 736) the detector reads plain solid shapes as text. Detection only: no recognition model runs.
"""
from __future__ import annotations

from functools import cached_property
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.curation.scorer import ClipFrames
from components.hashing import file_sha256

DET_PACKAGE = "rapidocr_onnxruntime"
DET_FILE = "ch_PP-OCRv4_det_infer.onnx"
XGEN_MAX_TEXT_PX = 20_000  # xGen-VideoSyn-1's rule, in pixels at its 720p working resolution
XGEN_AREA_FRAC = XGEN_MAX_TEXT_PX / (1280 * 720)  # the same rule as a fraction of the frame


class OcrConfig(BaseModel):
    """Keyframes, detector input size and DB post-processing thresholds."""

    model_config = ConfigDict(extra="forbid")
    num_frames: int = Field(3, ge=1)  # first / middle / last
    short_side: int = Field(1080, ge=0)  # the split's cap, so ocr_area is in stored-resolution pixels
    det_max_side: int = Field(960, ge=32)  # detector input long side cap (PaddleOCR's limit_type="max" default)
    det_max_upscale: float = Field(1.0, ge=1.0)  # small frames blown up make solid shapes look like glyphs
    bitmap_thresh: float = Field(0.3, gt=0, lt=1)  # DB: probability-map binarisation
    box_thresh: float = Field(0.3, gt=0, lt=1)  # Open-Sora: count boxes with mean confidence > 0.3
    unclip_ratio: float = Field(1.6, gt=0)  # PP-OCR's default expansion of the shrunk text kernel
    max_candidates: int = Field(1000, ge=1)
    threads: int = Field(1, ge=1)  # onnxruntime intra-op threads: curate.score parallelises over processes


def detector_path() -> Path:
    """The PP-OCRv4 detection ONNX file inside the installed rapidocr-onnxruntime package."""
    try:
        path = Path(str(files(DET_PACKAGE) / "models" / DET_FILE))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(f"OCR needs the {DET_PACKAGE} package (pip install rapidocr-onnxruntime)") from exc
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PP-OCRv4 detector missing from the installed {DET_PACKAGE} package")
    return path


def det_size(height: int, width: int, cfg: OcrConfig) -> tuple[int, int]:
    """Detector input (height, width): long side capped, upscaling bounded, both rounded to multiples of 32."""
    scale = min(cfg.det_max_upscale, cfg.det_max_side / max(height, width))
    return (max(32, int(round(height * scale / 32)) * 32), max(32, int(round(width * scale / 32)) * 32))


class OcrScorer:
    """Text boxes on keyframes from the PP-OCRv4 DB detector."""

    name = "ocr"
    columns = ("ocr_boxes", "ocr_area", "ocr_area_frac")

    def __init__(self, cfg: OcrConfig | None = None):
        self.cfg = cfg or OcrConfig()
        self.num_frames = self.cfg.num_frames
        self.short_side = self.cfg.short_side
        self.path = detector_path()

    @cached_property
    def session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.cfg.threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    @cached_property
    def postprocess(self):
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

        c = self.cfg
        return DBPostProcess(thresh=c.bitmap_thresh, box_thresh=c.box_thresh, max_candidates=c.max_candidates,
                             unclip_ratio=c.unclip_ratio, score_mode="fast", use_dilation=True)

    def provenance(self) -> dict[str, str]:
        return {"scorer": self.name, "method": f"PP-OCRv4 DB detector, box score > {self.cfg.box_thresh}",
                "weights": f"{DET_FILE}@{file_sha256(self.path)}", "version": "1"}

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """Text quadrilaterals (N, 4, 2) int32 in pixel coordinates of each frame of (T, H, W, 3) uint8 RGB."""
        t, h, w = frames.shape[:3]
        dh, dw = det_size(h, w, self.cfg)
        # PaddleOCR models were trained on BGR input normalised to [-1, 1]
        batch = np.stack([cv2.resize(f[..., ::-1], (dw, dh), interpolation=cv2.INTER_LINEAR) for f in frames])
        x = ((batch.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2)  # (T, 3, dh, dw)
        prob = self.session.run(None, {self.session.get_inputs()[0].name: x})[0]  # (T, 1, dh, dw)
        return [self.postprocess(prob[i:i + 1], (h, w))[0].reshape(-1, 4, 2) for i in range(t)]

    def score_frames(self, frames: np.ndarray) -> dict[str, float]:
        """Columns for one clip: the keyframe with the most text decides (text in any keyframe is a problem)."""
        h, w = frames.shape[1:3]
        boxes, area = 0, 0
        for quads in self.detect(frames):
            mask = np.zeros((h, w), np.uint8)
            if len(quads):
                cv2.fillPoly(mask, list(quads.astype(np.int32)), 1)
            boxes, area = max(boxes, len(quads)), max(area, int(mask.sum()))
        return {"ocr_boxes": float(boxes), "ocr_area": float(area), "ocr_area_frac": area / float(h * w)}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        return [self.score_frames(clip.frames) for clip in batch]
