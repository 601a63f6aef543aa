"""SynthConfig: every knob of the synthetic corpus (sizes, fps, shot kinds, transitions, holdout, codec)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.data.synth_shapes import COLOURS, DIRECTIONS, SHAPES

SHOT_KINDS = ("normal", "static", "camera", "text", "near_duplicate", "degraded")
# Kinds derived from an earlier clean shot; the rest are drawn fresh.
DERIVED_KINDS = ("near_duplicate", "degraded")


class SynthConfig(BaseModel):
    """The synthetic raw corpus; the same config and seed give the same bytes."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    n_videos: int = Field(24, ge=0)
    n_images: int = Field(8, ge=0)
    shots_per_video: tuple[int, int] = (2, 4)  # inclusive range
    shot_seconds: tuple[float, float] = (1.0, 2.5)
    min_shot_frames: int = Field(8, ge=2)  # a fade needs room on both sides of a boundary
    fps_choices: list[int] = [8, 12, 24, 30]
    # (width, height): 16:9, 4:3, 1:1 and 9:16, short side 64-144, even for yuv420p
    frame_sizes: list[tuple[int, int]] = [(256, 144), (128, 72), (192, 144), (128, 96),
                                          (96, 96), (144, 144), (72, 128), (144, 256)]
    image_sizes: list[tuple[int, int]] = [(256, 144), (192, 144), (128, 128), (96, 128), (144, 256)]
    image_jpeg_fraction: float = Field(0.5, ge=0, le=1)
    kind_fractions: dict[str, float] = {"normal": 0.35, "static": 0.1, "camera": 0.15, "text": 0.1,
                                        "near_duplicate": 0.15, "degraded": 0.15}
    fade_fraction: float = Field(0.4, ge=0, le=1)  # share of shot boundaries that fade instead of cutting
    fade_seconds: float = Field(0.3, gt=0)
    speeds: dict[str, float] = {"slow": 0.15, "fast": 0.45}  # frame spans per second along the motion
    camera_speed: float = 0.2  # frame spans per second of background translation in pan/tilt shots
    shape_size: tuple[float, float] = (0.25, 0.4)  # fraction of the frame's short side
    duplicate_length: tuple[float, float] = (0.5, 0.8)  # near-duplicate length / original length
    duplicate_crop: float = 0.08  # fraction cut from each side
    duplicate_shift: float = 0.06  # fraction of the size translated
    blur_sigma: float = 2.5  # pixels
    noise_std: float = 40.0  # grey levels
    overexpose_gain: float = 1.8
    overexpose_offset: float = 70.0
    text_height: float = 0.22  # burned-in text height as a fraction of the frame height
    holdout: list[tuple[str, str, str]] = [("red", "circle", "left"), ("blue", "square", "up"),
                                           ("green", "triangle", "right")]
    plant_bad: bool = True
    # libx264 settings fixed so the bytes are stable; threads=1 keeps the encoder deterministic
    preset: str = "veryfast"
    crf: int = Field(23, ge=0, le=51)
    jpeg_quality: int = Field(90, ge=1, le=100)

    @field_validator("frame_sizes", "image_sizes")
    @classmethod
    def _even(cls, sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for w, h in sizes:
            if w % 2 or h % 2 or w < 16 or h < 16:
                raise ValueError(f"size {w}x{h}: width and height must be even and >= 16 (yuv420p)")
        return sizes

    @field_validator("kind_fractions")
    @classmethod
    def _kinds(cls, fractions: dict[str, float]) -> dict[str, float]:
        unknown = set(fractions) - set(SHOT_KINDS)
        if unknown:
            raise ValueError(f"unknown shot kinds {sorted(unknown)}; known: {', '.join(SHOT_KINDS)}")
        if abs(sum(fractions.values()) - 1.0) > 1e-6 or min(fractions.values(), default=0) < 0:
            raise ValueError(f"kind fractions must be >= 0 and sum to 1, got {fractions}")
        return fractions

    @field_validator("holdout")
    @classmethod
    def _holdout(cls, combos: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        for colour, shape, direction in combos:
            if colour not in COLOURS or shape not in SHAPES or direction not in DIRECTIONS:
                raise ValueError(f"holdout {(colour, shape, direction)}: not in the vocabulary "
                                 f"(colours {list(COLOURS)}, shapes {list(SHAPES)}, directions {list(DIRECTIONS)})")
        return combos

    @model_validator(mode="after")
    def _ranges(self) -> "SynthConfig":
        for name in ("shots_per_video", "shot_seconds", "shape_size", "duplicate_length"):
            low, high = getattr(self, name)
            if low > high or low <= 0:
                raise ValueError(f"{name}: expected 0 < low <= high, got {(low, high)}")
        if not self.fps_choices or min(self.fps_choices) <= 0:
            raise ValueError(f"fps_choices must be positive, got {self.fps_choices}")
        if set(self.speeds) != {"slow", "fast"}:
            raise ValueError(f"speeds must define exactly 'slow' and 'fast', got {sorted(self.speeds)}")
        return self
