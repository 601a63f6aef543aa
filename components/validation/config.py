"""ValidateConfig: every threshold the metadata expectation suite checks, in one typed place."""
from __future__ import annotations

from pydantic import Field, model_validator

from components.config import StageConfig
from components.data.schema import KNOWN_CODECS, METADATA_COLUMNS


class ValidateConfig(StageConfig):
    """Thresholds and switches of `data.validate` (the suite is built from these alone)."""

    # relative to the workspace, or an fsspec URI (s3://…)
    metadata: str = "data/ingest/metadata.parquet"
    required_columns: list[str] = Field(default_factory=lambda: list(METADATA_COLUMNS))
    min_rows: int = Field(1, ge=0)
    # side and aspect limits default to data.ingest's, so a table ingest accepted passes
    min_side: int = Field(32, ge=1)  # pixels, height and width alike
    max_side: int = Field(8192, ge=1)
    max_aspect: float = Field(6.0, ge=1.0)  # aspect_ratio (h/w) must lie in [1/max_aspect, max_aspect]
    # absolute; tolerates tables that round aspect_ratio to 2 decimals (imported Open-Sora CSVs)
    aspect_tolerance: float = Field(0.01, ge=0.0)
    max_frames: int = Field(1_000_000, ge=1)  # ~9 hours at 30 fps: longer means a broken frame count
    max_fps: float = Field(240.0, gt=0.0)  # images carry 120 by the Open-Sora convention
    codecs: list[str] = Field(default_factory=lambda: list(KNOWN_CODECS))
    media: list[str] = Field(default_factory=lambda: ["video", "image"])
    rotations: list[int] = Field(default_factory=lambda: [0, 90, 180, 270])
    require_captions: bool = False
    check_files_exist: bool = True
    exists_workers: int = Field(16, ge=1)  # threads for fsspec isfile(); remote stores answer slowly
    max_examples: int = Field(5, ge=1)  # example rows per failed expectation, in the report and data docs

    @model_validator(mode="after")
    def _sides_ordered(self) -> "ValidateConfig":
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
        return self
