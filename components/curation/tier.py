"""Stage curate.tier: filter rules → quality tiers (Parquet + Open-Sora CSV), GX-validated, with the curation report.

Joins the split's clips with their scores and captions, applies the rules in a fixed order (tier_rules.py),
assigns tiers, accounts for every ingested video (accounting.py), validates each tier table with the clip
suite (components/validation/clip_suite.py) and writes the report (report.py, plots.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from components.config import StageConfig
from components.curation.accounting import account_videos, ingest_quarantine_rows, ingest_universe
from components.curation.plots import score_plots
from components.curation.report import markdown, rule_counts, score_summary, step_counts
from components.curation.tier_rules import (RULES, TIERS, RuleConfig, ScoreColumns, TierRules, aesthetic,
                                            apply_rules, assign_tiers, thresholds)
from components.data.schema import OPENSORA_COLUMNS
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.validation.clip_suite import ClipValidateConfig
from components.hashing import exists
from components.workspace import filesystem, is_remote

OUTPUT = "curate/tier"
QUARANTINE_COLUMNS = ["video_id", "step", "error"]
# Open-Sora's optional score columns, after its required ones; clip range columns let loaders cut the source
CSV_EXTRA = ["aes", "aes_method", "flow", "ocr", "cmotion", "clip_id", "start_frame", "end_frame"]


class TierConfig(StageConfig):
    """curate.tier: its inputs, the rules, the tier bars, the clip-table suite and the report's plots."""

    metadata: str = "data/ingest/metadata.parquet"
    ingest_quarantine: str = "data/ingest/quarantine.parquet"
    clips: str = "curate/split/clips.parquet"
    # the split's dropped segments (video_id, rule) and its report (a video it could not read has an "error")
    split_dropped: str = "curate/split/dropped.parquet"
    split_report: str = "curate/split/split_report.json"
    scores: str = "curate/score/scores.parquet"
    score_quarantine: str = "curate/score/quarantine.parquet"
    captions: str = "curate/caption/captions.parquet"
    caption_quarantine: str = "curate/caption/quarantine.parquet"
    columns: ScoreColumns = ScoreColumns()
    rules: RuleConfig = RuleConfig()
    tiers: TierRules = TierRules()
    validation: ClipValidateConfig = ClipValidateConfig()
    ocr_count_column: str = "ocr_boxes"  # Open-Sora's `ocr` column counts text boxes
    plots: bool = True
    plot_bins: int = Field(30, ge=2)


def _uri(ws: Path, value: str) -> str:
    return value if is_remote(value) else str(ws / value)


def tier_inputs(cfg: TierConfig, ws: Path) -> dict[str, str]:
    names = ("metadata", "ingest_quarantine", "clips", "scores", "score_quarantine", "captions", "caption_quarantine")
    return {name: _uri(ws, getattr(cfg, name)) for name in names}


def _optional(uri: str, columns: list[str]) -> pd.DataFrame:
    """A table some split implementations do not write: empty with `columns` when absent."""
    return pd.read_parquet(uri) if exists(uri) else pd.DataFrame(columns=columns)


def split_quarantine(uri: str) -> pd.DataFrame:
    """Videos the split could not read (their split_report entry has an error), as quarantine rows."""
    rows = []
    if exists(uri):
        fs, path = filesystem(uri)
        videos = json.loads(fs.cat_file(path)).get("videos", {})
        rows = [{"video_id": vid, "step": "split", "error": entry["error"]}
                for vid, entry in sorted(videos.items()) if entry.get("error")]
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)


def join_clips(clips: pd.DataFrame, scores: pd.DataFrame, captions: pd.DataFrame) -> pd.DataFrame:
    """Clips that were scored and captioned, with every score, the final caption (`text`) and its flags."""
    table = clips.rename(columns={"text": "source_text"}).merge(scores, on="clip_id", how="inner")
    return table.merge(captions, on="clip_id", how="inner")


def opensora_csv(members: pd.DataFrame, cfg: TierConfig) -> pd.DataFrame:
    """Open-Sora columns (path,text,num_frames,height,width,aspect_ratio,fps,resolution) + scores + clip range."""
    out = members[OPENSORA_COLUMNS].copy()
    out["aes"] = aesthetic(members, cfg.columns)[0] if len(members) else pd.Series(dtype=float)
    out["aes_method"] = members["aes_method"]
    for name, column in (("flow", cfg.columns.flow), ("ocr", cfg.ocr_count_column), ("cmotion", "cmotion")):
        out[name] = members[column] if column in members else None
    return pd.concat([out, members[["clip_id", "start_frame", "end_frame"]]], axis=1)[OPENSORA_COLUMNS + CSV_EXTRA]


def validate_tiers(tables: dict[str, pd.DataFrame], cfg: TierConfig, out: Path, tracker: Any) -> dict[str, dict]:
    """Run the clip suite on each tier table; raise ValidationFailed naming the tier and its failed expectations."""
    from components.validation.clip_suite import validate_clips  # GX takes seconds to import
    from components.validation.report import ValidationFailed, summary

    reports = {}
    for tier, table in tables.items():
        report = validate_clips(table.drop(columns=["failed_rules"]), cfg.validation, out / "data_docs" / tier,
                                f"{OUTPUT}/{tier}.parquet")
        (out / "validation").mkdir(exist_ok=True)
        (out / "validation" / f"{tier}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        if not report["success"]:
            # logged before the raise: the runner discards ctx.out when the stage fails
            tracker.log_artifact(out / "validation", "curation_report/validation")
            tracker.log_artifact(out / "data_docs" / tier, f"curation_report/data_docs/{tier}")
            message = summary(report).replace("metadata validation failed", "clip table validation failed", 1)
            raise ValidationFailed(f"{tier}: {message}", report)
        reports[tier] = report
    return reports


def build_report(ctx: StageContext, videos: pd.DataFrame, decided: pd.DataFrame, n_dropped: int,
                 plots: list[str], method: str) -> dict[str, Any]:
    cfg: TierConfig = ctx.cfg
    kind = "laion" if method == "laion" else "classical"
    score_columns = [c for c in dict.fromkeys(list(cfg.columns.model_dump().values()) + ["dup_similarity"])
                     if c in decided]
    counts = videos["status"].value_counts()
    return {
        "profile": ctx.profile,
        "steps": step_counts(videos, decided, n_dropped, list(thresholds(cfg.rules))),
        "rules": rule_counts(decided),
        "thresholds": thresholds(cfg.rules),
        "tiers": {t: {"clips": int(decided[f"in_{t}"].sum()),
                      "videos": int(decided.loc[decided[f"in_{t}"], "video_id"].nunique())} for t in TIERS},
        "aesthetic": {"method": method,
                      "tier2": cfg.tiers.tier2_aes if kind == "laion" else cfg.tiers.tier2_aes_classical,
                      "tier3": cfg.tiers.tier3_aes if kind == "laion" else cfg.tiers.tier3_aes_classical,
                      "tier3_min_short_side": cfg.tiers.tier3_min_short_side},
        "accounting": {"ingested": len(videos)} | {s: int(counts.get(s, 0))
                                                     for s in ("kept", "filtered", "quarantined")},
        "scores": score_summary(decided, score_columns),
        "plots": plots,
        "quarantined": videos.loc[videos["status"] == "quarantined", ["video_id", "step", "reason"]]
        .to_dict("records"),
        "filtered_videos": videos.loc[videos["status"] == "filtered", ["video_id", "step", "reason"]]
        .to_dict("records"),
    }


def _plot_lines(cfg: TierConfig) -> dict[str, dict[str, float]]:
    r, t, c = cfg.rules, cfg.tiers, cfg.columns
    lines = {c.motion: {"static": r.static_motion}, c.flow: {"too fast": r.max_flow}, c.ocr: {"text": r.max_ocr},
             c.temporal: {"inconsistent": r.min_temporal},
             c.aes: {"tier 2": t.tier2_aes, "tier 3": t.tier3_aes, "floor": r.min_aesthetic},
             c.aes_classical: {"tier 2": t.tier2_aes_classical, "tier 3": t.tier3_aes_classical},
             "dup_similarity": {}}
    return {col: {k: v for k, v in named.items() if v is not None} for col, named in lines.items()}


@stage("curate.tier", TierConfig, output=OUTPUT, inputs=tier_inputs)
def tier(ctx: StageContext) -> dict[str, float]:
    """Apply the filter rules, assign tiers, validate them, account for every video, write the report."""
    cfg: TierConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    started = time.perf_counter()
    ws = Path(ctx.workspace)
    read = {name: pd.read_parquet(uri) for name, uri in ctx.inputs.items()}
    split_dropped = _optional(_uri(ws, cfg.split_dropped), ["video_id", "rule"])
    universe = ingest_universe(read["metadata"], read["ingest_quarantine"])
    quarantine = pd.concat([ingest_quarantine_rows(read["ingest_quarantine"]),
                            split_quarantine(_uri(ws, cfg.split_report)),
                            read["score_quarantine"][QUARANTINE_COLUMNS],
                            read["caption_quarantine"][QUARANTINE_COLUMNS]], ignore_index=True)

    decided = join_clips(read["clips"], read["scores"], read["captions"])
    decided = decided[~decided["video_id"].isin(set(quarantine["video_id"]))]
    decided = assign_tiers(apply_rules(decided.reset_index(drop=True), cfg.rules, cfg.columns), cfg.tiers,
                           cfg.columns)
    videos = account_videos(universe, quarantine, read["clips"], decided, split_dropped, RULES)

    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {t: decided[decided[f"in_{t}"]].reset_index(drop=True) for t in TIERS}
    validate_tiers(tables, cfg, out, tracker)
    for name, table in tables.items():
        table.to_parquet(out / f"{name}.parquet", index=False)
        opensora_csv(table, cfg).to_csv(out / f"{name}.csv", index=False)
    decided.to_parquet(out / "decisions.parquet", index=False)
    videos.to_parquet(out / "videos.parquet", index=False)
    plots = score_plots(decided, _plot_lines(cfg), out / "plots", cfg.plot_bins) if cfg.plots else []
    method = decided["aes_method"].iloc[0] if len(decided) else aesthetic(decided, cfg.columns)[1]
    report = build_report(ctx, videos, decided, len(split_dropped), [str(p.relative_to(out)) for p in plots],
                          method)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))

    metrics = {f"tier/{t}_clips": float(v["clips"]) for t, v in report["tiers"].items()}
    metrics |= {f"tier/videos_{k}": float(v) for k, v in report["accounting"].items()}
    metrics |= {f"tier/dropped_{r['rule']}": float(r["dropped_first"]) for r in report["rules"]
                if r["rule"] in report["thresholds"]}
    metrics |= {"tier/clips_decided": float(len(decided)), "tier/seconds": time.perf_counter() - started}
    tracker.log_metrics(metrics)
    tracker.set_tags({"reelforge.curate.aesthetic": f"{method} (tiers use "
                      f"{cfg.columns.aes if method == 'laion' else cfg.columns.aes_classical})"})
    for name in ("report.md", "report.json", "videos.parquet"):
        tracker.log_artifact(out / name, "curation_report")
    for folder in ("plots", "data_docs", "validation"):
        if (out / folder).exists():
            tracker.log_artifact(out / folder, f"curation_report/{folder}")
    for name, table in tables.items():
        tracker.log_dataset(name=f"curate-{name}", source=str(ws / OUTPUT / f"{name}.parquet"),
                            digest=_digest(out / f"{name}.parquet"), context="curate", df=opensora_csv(table, cfg))
    return metrics


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
