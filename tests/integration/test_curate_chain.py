"""split → score → caption → tier on a micro synthetic corpus through the stage functions: accounting, tiers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.curation.caption import CaptionConfig, caption
from components.curation.caption_checks import FLAG_COLUMNS
from components.curation.score import score
from components.curation.score_config import ScoreConfig
from components.curation.split import SplitConfig, split
from components.curation.tier import TierConfig, tier
from components.curation.tier_rules import RULES
from components.data.ingest import IngestConfig, ingest
from components.data.schema import OPENSORA_COLUMNS
from components.data.synth import SynthConfig, synthesize
from components.stage import StageContext
from components.tracking import NoopTracker
from components.validation import ValidationFailed

pytestmark = pytest.mark.slow

CORPUS = dict(n_videos=6, n_images=2, shots_per_video=(2, 3), shot_seconds=(1.0, 1.6), fps_choices=[12, 24],
              frame_sizes=[(128, 72), (96, 96), (144, 144)], image_sizes=[(128, 96)])
SCORERS = [{"name": "motion"}, {"name": "flow", "options": {"method": "farneback"}}, {"name": "ocr"},
           {"name": "aes_classical"}, {"name": "temporal", "options": {"method": "features"}}]
TIER = dict(rules={"min_seconds": 0.5, "min_short_side": 64}, tiers={"tier3_min_short_side": 96})


def run_stage(fn, name, cfg, ws: Path, inputs: dict[str, str], **kwargs) -> dict:
    out = ws / f".{name}.tmp"
    ctx = StageContext(name=name, profile="tiny", cfg=cfg, workspace=ws, out=out, inputs=inputs,
                       checkpoint_dir=ws / "checkpoints" / name, tracker=NoopTracker())
    metrics = fn(ctx, **kwargs)
    final = ws / {"data.ingest": "data/ingest"}.get(name, name.replace(".", "/"))
    final.parent.mkdir(parents=True, exist_ok=True)
    out.rename(final)  # as the runner does: outputs appear only when the stage finished
    return metrics


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0", "seed1"])
def chain(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"raw{request.param}")
    gt = synthesize(root, SynthConfig(seed=request.param, **CORPUS))
    ws = tmp_path_factory.mktemp(f"ws{request.param}")
    run_stage(ingest, "data.ingest", IngestConfig(source=str(root), progress=False), ws, {"raw": str(root)})
    meta = str(ws / "data/ingest/metadata.parquet")
    run_stage(split, "curate.split", SplitConfig(progress=False), ws, {"metadata": meta})
    clips = str(ws / "curate/split/clips.parquet")
    metrics = run_stage(score, "curate.score", ScoreConfig(scorers=SCORERS, progress=False), ws, {"clips": clips})
    scores = str(ws / "curate/score/scores.parquet")
    run_stage(caption, "curate.caption", CaptionConfig(), ws, {"metadata": meta, "clips": clips, "scores": scores})
    cfg = TierConfig(**TIER)
    inputs = {n: str(ws / getattr(cfg, n)) for n in ("metadata", "ingest_quarantine", "clips", "scores",
                                                     "score_quarantine", "captions", "caption_quarantine")}
    tier_metrics = run_stage(tier, "curate.tier", cfg, ws, inputs)
    return root, gt, ws, cfg, metrics, tier_metrics


def test_every_ingested_file_is_accounted_for(chain):
    root, gt, ws, cfg, _, metrics = chain
    report = json.loads((ws / "curate/tier/report.json").read_text())
    videos = pd.read_parquet(ws / "curate/tier/videos.parquet")
    ingested = len(gt["videos"]) + len(gt["images"]) + len(gt["bad_files"])
    acc = report["accounting"]
    assert acc["ingested"] == ingested == acc["kept"] + acc["filtered"] + acc["quarantined"], acc
    assert metrics["tier/videos_ingested"] == ingested
    by_path = videos.set_index("path")
    for bad in gt["bad_files"]:  # every planted bad file is quarantined at ingest with its kind
        row = by_path.loc[str(root / bad["path"])]
        assert (row.status, row.step) == ("quarantined", "ingest") and row.reason.startswith(bad["kind"] + ": ")
    clips = pd.read_parquet(ws / "curate/split/clips.parquet")
    assert videos["clips"].sum() == len(clips)
    assert (videos["clips_kept"] + videos["clips_filtered"] + videos["clips_quarantined"] == videos["clips"]).all()
    assert {s["step"]: s for s in report["steps"]}["clips after split"]["clips"] == len(clips)


def test_tier_membership_follows_the_rules_on_values(chain):
    _, _, ws, cfg, _, _ = chain
    d = pd.read_parquet(ws / "curate/tier/decisions.parquet")
    rules = cfg.rules
    video = d["media"] == "video"
    seconds = d["num_frames"] / d["fps"]
    expect = {
        "too_short": video & (seconds < rules.min_seconds),
        "too_long": video & (seconds > rules.max_seconds),
        "low_resolution": np.minimum(d["height"], d["width"]) < rules.min_short_side,
        "duplicate": d["dup_of"] != "",
        "static": video & ~(d["motion"] >= rules.static_motion),
        "too_fast": video & ~(d["flow"] <= rules.max_flow),
        "text": ~(d["ocr_area_frac"] <= rules.max_ocr),
    } | {flag: d[flag] for flag in FLAG_COLUMNS}
    for i, row in d.iterrows():
        failing = [r for r in RULES if r in expect and bool(expect[r][i])]
        assert list(row["failed_rules"]) == failing, (row["clip_id"], list(row["failed_rules"]), failing)
        assert row["drop_rule"] == (failing[0] if failing else ""), row["clip_id"]
    t = cfg.tiers
    assert (d["in_tier1"] == (d["drop_rule"] == "")).all()
    assert (d["in_tier2"] == d["in_tier1"] & (d["aes_classical"] >= t.tier2_aes_classical)).all()
    assert (d["in_tier3"] == d["in_tier2"] & (d["aes_classical"] >= t.tier3_aes_classical)
            & (np.minimum(d["height"], d["width"]) >= t.tier3_min_short_side)).all()
    assert (d["aes_method"] == "classical").all() and d["in_tier1"].any()


def test_tier_files_csv_validation_and_report(chain):
    _, _, ws, _, _, metrics = chain
    out = ws / "curate/tier"
    d = pd.read_parquet(out / "decisions.parquet")
    for name in ("tier1", "tier2", "tier3"):
        table = pd.read_parquet(out / f"{name}.parquet")
        assert table["clip_id"].tolist() == d.loc[d[f"in_{name}"], "clip_id"].tolist()
        csv = pd.read_csv(out / f"{name}.csv", keep_default_na=False)
        assert list(csv.columns[:8]) == OPENSORA_COLUMNS and len(csv) == len(table)
        assert {"aes", "flow", "ocr", "cmotion", "text"} <= set(csv.columns)
        assert json.loads((out / "validation" / f"{name}.json").read_text())["success"]
        assert (out / "data_docs" / name / "index.html").is_file()
        assert metrics[f"tier/{name}_clips"] == len(table)
    text = (out / "report.md").read_text()
    assert "## Counts per step" in text and "| tier1 |" in text
    for plot in json.loads((out / "report.json").read_text())["plots"]:
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def test_score_outputs_and_provenance(chain):
    _, _, ws, _, metrics, _ = chain
    scores = pd.read_parquet(ws / "curate/score/scores.parquet")
    prov = json.loads((ws / "curate/score/provenance.json").read_text())
    assert set(scores.columns) - {"clip_id"} <= set(prov)
    assert prov["aes_classical"]["scorer"] and "farneback" in prov["flow"]["method"].lower()
    assert metrics["score/clips_scored"] == len(scores) and metrics["score/videos_quarantined"] == 0


def test_a_tier_failing_its_suite_stops_the_stage(chain, tmp_path):
    _, _, ws, cfg, _, _ = chain
    kept = pd.read_parquet(ws / "curate/tier/decisions.parquet").query("in_tier1")["clip_id"].iloc[0]
    captions = pd.read_parquet(ws / "curate/caption/captions.parquet")
    captions.loc[captions["clip_id"] == kept, "text"] = ""  # an empty caption with the caption rules off
    captions.to_parquet(tmp_path / "captions.parquet", index=False)
    loose = TierConfig(**(TIER | {"rules": TIER["rules"] | {"caption_flags": []}}))
    inputs = {n: str(ws / getattr(loose, n)) for n in ("metadata", "ingest_quarantine", "clips", "scores",
                                                       "score_quarantine", "captions", "caption_quarantine")}
    inputs["captions"] = str(tmp_path / "captions.parquet")
    ctx = StageContext(name="curate.tier", profile="tiny", cfg=loose, workspace=ws, out=tmp_path / "out",
                       inputs=inputs, checkpoint_dir=tmp_path / "ckpt", tracker=NoopTracker())
    with pytest.raises(ValidationFailed, match=r"(?s)^tier1: clip table validation failed: 1 of \d+ expectations.*"
                                             r"expect_column_values_to_match_regex column=text.*value=''"):
        tier(ctx)
