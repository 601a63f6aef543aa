"""Filter rules and quality tiers over the joined clip table (clips + scores + captions); pure pandas.

Rules run in a fixed order (RULES); a clip's `drop_rule` is the first one it fails and `failed_rules` lists
all of them, so the report can say both "what dropped it" and "what else was wrong". A rule whose threshold
is None is off. A rule that needs a score the clip lacks (NaN) fails: a missing score is not a pass.
Video-only rules (length, motion, flow, temporal consistency) pass images, which have no motion.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.curation.caption_checks import FLAG_COLUMNS

# The fixed rule order: cheap metadata first, then dedup, motion, OCR, quality, captions (xGen's order).
RULES = ("image", "too_short", "too_long", "low_resolution", "duplicate", "static", "too_fast", "text", "inconsistent",
         "low_aesthetic", *FLAG_COLUMNS)
TIERS = ("tier1", "tier2", "tier3")


class ScoreColumns(BaseModel):
    """Which score column each rule reads (the scorers' column names)."""

    model_config = ConfigDict(extra="forbid")
    motion: str = "motion"
    flow: str = "flow"
    ocr: str = "ocr_area_frac"
    temporal: str = "temporal"
    aes: str = "aes"  # LAION aesthetic predictor (0-10)
    aes_classical: str = "aes_classical"  # the offline stand-in, with its own thresholds


class RuleConfig(BaseModel):
    """Drop thresholds (None = rule off). Defaults follow RECIPE.md §1."""

    model_config = ConfigDict(extra="forbid")
    min_seconds: float | None = 2.0  # Open-Sora cuts scenes to a minimum length
    max_seconds: float | None = 60.0
    min_short_side: int | None = 144  # min(height, width) in stored pixels
    duplicates: bool = True  # drop the shorter copy of a near-duplicate pair (dup_of set by curate.score)
    static_motion: float | None = 0.002  # xGen: motion-mask mean below this is a static shot
    max_flow: float | None = 20.0  # VidGen drops too-fast clips: px/frame at the 256 reference
    max_ocr: float | None = 0.0217  # xGen: text boxes < 20,000 px at 720p = 2.17% of the frame
    min_temporal: float | None = None  # VidGen: first/last frame feature cosine below this = a missed cut
    min_aesthetic: float | None = None  # a floor for every tier (xGen drops < 4.5); tier 2 has its own bar
    caption_flags: list[str] = Field(default_factory=lambda: list(FLAG_COLUMNS))  # flags that drop a clip
    drop_images: bool = False  # Open-Sora trains images and videos jointly; true keeps videos only


class TierRules(BaseModel):
    """What lifts a clean clip into tier 2 and tier 3."""

    model_config = ConfigDict(extra="forbid")
    tier2_aes: float = 4.5  # Open-Sora stage 2 / xGen, on the LAION score
    tier2_aes_classical: float = 4.5  # the same bar on the classical stand-in's own 0-10 scale
    tier3_aes: float = 5.5  # "fair" on the LAION scale (6.5 is "high")
    tier3_aes_classical: float = 5.5
    tier3_min_short_side: int = 720  # high resolution


def thresholds(rules: RuleConfig) -> dict[str, object]:
    """rule -> its setting, for the enabled rules only (the report's rules table)."""
    values: dict[str, object] = {
        "image": "videos only" if rules.drop_images else None,
        "too_short": rules.min_seconds, "too_long": rules.max_seconds, "low_resolution": rules.min_short_side,
        "duplicate": "dup_of set" if rules.duplicates else None, "static": rules.static_motion,
        "too_fast": rules.max_flow, "text": rules.max_ocr, "inconsistent": rules.min_temporal,
        "low_aesthetic": rules.min_aesthetic,
    } | {flag: "flag set" for flag in rules.caption_flags}
    return {rule: values[rule] for rule in RULES if values.get(rule) is not None}


def aesthetic(table: pd.DataFrame, cols: ScoreColumns) -> tuple[pd.Series, str]:
    """The aesthetic score tiers use and its name: LAION `aes` when the table has it, else the classical one."""
    if cols.aes in table and table[cols.aes].notna().any():
        return table[cols.aes].astype(float), "laion"
    if cols.aes_classical in table:
        return table[cols.aes_classical].astype(float), "classical"
    raise ValueError(f"tiers need an aesthetic score: neither {cols.aes!r} nor {cols.aes_classical!r} is a column "
                     f"of the score table; enable the aes or aes_classical scorer")


def _column(table: pd.DataFrame, column: str, rule: str, setting: str) -> pd.Series:
    if column not in table:
        raise ValueError(f"rule {rule!r} needs score column {column!r}, which the score table lacks "
                         f"(columns: {', '.join(map(str, table.columns))}); enable its scorer or set {setting}: null")
    return table[column].astype(float)


def _below(values: pd.Series, threshold: float) -> pd.Series:
    return ~(values >= threshold)  # NaN fails: a missing score is not a pass


def _above(values: pd.Series, threshold: float) -> pd.Series:
    return ~(values <= threshold)


def rule_failures(table: pd.DataFrame, rules: RuleConfig, cols: ScoreColumns) -> pd.DataFrame:
    """One boolean column per rule in RULES order: True where the clip fails it."""
    video = (table["media"] == "video").to_numpy()
    seconds = table["num_frames"] / table["fps"]
    off = pd.Series(False, index=table.index)
    out = {name: off for name in RULES}
    if rules.drop_images:
        out["image"] = ~video
    if rules.min_seconds is not None:
        out["too_short"] = video & (seconds < rules.min_seconds)
    if rules.max_seconds is not None:
        out["too_long"] = video & (seconds > rules.max_seconds)
    if rules.min_short_side is not None:
        out["low_resolution"] = np.minimum(table["height"], table["width"]) < rules.min_short_side
    if rules.duplicates:
        if "dup_of" not in table:
            raise ValueError("rule 'duplicate' needs column 'dup_of' from curate.score (dedup); "
                             "enable score.dedup or set tier.rules.duplicates: false")
        out["duplicate"] = table["dup_of"].fillna("").astype(str) != ""
    if rules.static_motion is not None:
        out["static"] = video & _below(_column(table, cols.motion, "static", "static_motion"), rules.static_motion)
    if rules.max_flow is not None:
        out["too_fast"] = video & _above(_column(table, cols.flow, "too_fast", "max_flow"), rules.max_flow)
    if rules.max_ocr is not None:
        out["text"] = _above(_column(table, cols.ocr, "text", "max_ocr"), rules.max_ocr)
    if rules.min_temporal is not None:
        temporal = _column(table, cols.temporal, "inconsistent", "min_temporal")
        out["inconsistent"] = video & _below(temporal, rules.min_temporal)
    if rules.min_aesthetic is not None:
        out["low_aesthetic"] = _below(aesthetic(table, cols)[0], rules.min_aesthetic)
    for flag in rules.caption_flags:
        if flag not in FLAG_COLUMNS:
            raise ValueError(f"caption_flags: unknown flag {flag!r}; known: {', '.join(FLAG_COLUMNS)}")
        if flag not in table:
            raise ValueError(f"rule {flag!r} needs column {flag!r} from curate.caption")
        out[flag] = table[flag].fillna(True).astype(bool)  # an unchecked caption is not a clean one
    return pd.DataFrame({name: pd.Series(np.asarray(v, dtype=bool), index=table.index) for name, v in out.items()})


def apply_rules(table: pd.DataFrame, rules: RuleConfig, cols: ScoreColumns) -> pd.DataFrame:
    """The table with drop_rule (first failing rule in RULES order, "" if none) and failed_rules (all of them)."""
    fails = rule_failures(table, rules, cols)
    names = np.array(RULES, dtype=object)
    matrix = fails[list(RULES)].to_numpy()
    out = table.copy()
    out["failed_rules"] = [list(names[row]) for row in matrix]
    out["drop_rule"] = [str(names[row][0]) if row.any() else "" for row in matrix]
    return out


def assign_tiers(table: pd.DataFrame, tiers: TierRules, cols: ScoreColumns) -> pd.DataFrame:
    """in_tier1/2/3 columns: tier1 = every clean clip, tier2 adds the aesthetic bar, tier3 adds resolution."""
    out = table.copy()
    clean = out["drop_rule"] == ""
    score, kind = aesthetic(out, cols)
    bar2 = tiers.tier2_aes if kind == "laion" else tiers.tier2_aes_classical
    bar3 = tiers.tier3_aes if kind == "laion" else tiers.tier3_aes_classical
    out["aes_method"] = kind
    out["in_tier1"] = clean
    out["in_tier2"] = clean & (score >= bar2)
    out["in_tier3"] = out["in_tier2"] & (score >= bar3) & (
        np.minimum(out["height"], out["width"]) >= tiers.tier3_min_short_side)
    return out
