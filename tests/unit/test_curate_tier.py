"""curate.tier logic on hand-built tables: rule order and values, tiers, aesthetic choice, accounting, counts, CSV."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from components.curation.accounting import AccountingError, account_videos, ingest_id, ingest_universe
from components.curation.caption_checks import FLAG_COLUMNS
from components.curation.report import markdown, rule_counts, step_counts
from components.curation.tier import TierConfig, opensora_csv
from components.curation.tier_rules import RULES, RuleConfig, ScoreColumns, TierRules, apply_rules, assign_tiers, \
    thresholds
from components.data.schema import OPENSORA_COLUMNS

NAN = math.nan
COLS = ScoreColumns()


def clip(i: int, **over) -> dict:
    """A clean 2-second 256x144 video clip with middling scores; `over` plants the defect under test."""
    row = {"clip_id": f"{'v' * 15}{i % 3}-{i:06d}-{i + 48:06d}", "video_id": f"{'v' * 15}{i % 3}",
           "path": f"/raw/v{i % 3}.mp4", "media": "video", "start_frame": i, "end_frame": i + 48, "num_frames": 48,
           "fps": 24.0, "height": 144, "width": 256, "aspect_ratio": 144 / 256, "resolution": 144 * 256,
           "text": f"a red circle {i}.", "motion": 0.01, "flow": 5.0, "ocr_area_frac": 0.0, "ocr_boxes": 0.0,
           "cmotion": "static", "aes": 5.0, "dup_of": "", "dup_similarity": NAN}
    row |= {flag: False for flag in FLAG_COLUMNS}
    return row | over


CASES = {  # name: (clip overrides, expected drop_rule, expected failed_rules)
    "clean": ({}, "", []),
    "short": ({"num_frames": 24, "end_frame": 24}, "too_short", ["too_short"]),
    "image": ({"media": "image", "num_frames": 1, "fps": 120.0, "motion": NAN, "flow": NAN}, "", []),
    "copy": ({"dup_of": "x", "motion": 0.001}, "duplicate", ["duplicate", "static"]),
    "no motion score": ({"motion": NAN}, "static", ["static"]),
    "fast": ({"flow": 30.0}, "too_fast", ["too_fast"]),
    "text": ({"ocr_area_frac": 0.05}, "text", ["text"]),
    "transition": ({"caption_transition": True, "text": "a cat. Then a dog."}, "caption_transition",
                   ["caption_transition"]),
    "small": ({"height": 100, "width": 100, "aes": 3.0}, "low_resolution", ["low_resolution"]),
    "everything": ({"num_frames": 24, "flow": 99.0, "caption_empty": True}, "too_short",
                   ["too_short", "too_fast", "caption_empty"]),
}


def table() -> pd.DataFrame:
    return pd.DataFrame([clip(i, **over) for i, (over, _, _) in enumerate(CASES.values())], index=list(CASES))


def test_rules_give_first_failing_rule_and_all_failing_rules():
    decided = apply_rules(table(), RuleConfig(), COLS)
    for name, (_, first, every) in CASES.items():
        assert decided.loc[name, "drop_rule"] == first, name
        assert decided.loc[name, "failed_rules"] == every, name


def test_rules_off_and_thresholds_table():
    rules = RuleConfig(static_motion=None, max_flow=None, duplicates=False, caption_flags=[])
    decided = apply_rules(table(), rules, COLS)
    assert decided.loc["copy", "drop_rule"] == "" and decided.loc["fast", "drop_rule"] == ""
    assert decided.loc["everything", "failed_rules"] == ["too_short"]
    assert list(thresholds(rules)) == ["too_short", "too_long", "low_resolution", "text"]
    assert list(thresholds(RuleConfig())) == [r for r in RULES if r not in ("image", "inconsistent", "low_aesthetic")]
    videos_only = apply_rules(table(), RuleConfig(drop_images=True), COLS)
    assert videos_only.loc["image", "drop_rule"] == "image"


def test_tiers_on_values():
    t = table()
    t.loc["image", ["height", "width", "aes"]] = [720, 1280, 6.0]
    t.loc["clean", "aes"] = 4.4
    tiers = assign_tiers(apply_rules(t, RuleConfig(), COLS), TierRules(), COLS)
    assert tiers.index[tiers["in_tier1"]].tolist() == ["clean", "image"]
    assert tiers.index[tiers["in_tier2"]].tolist() == ["image"]  # 4.4 < 4.5
    assert tiers.index[tiers["in_tier3"]].tolist() == ["image"]  # aes 6 >= 5.5 and short side 720
    assert (tiers["in_tier1"] == (tiers["drop_rule"] == "")).all() and (tiers["aes_method"] == "laion").all()
    lower = assign_tiers(apply_rules(t, RuleConfig(), COLS), TierRules(tier2_aes=4.0, tier3_min_short_side=144), COLS)
    assert lower.index[lower["in_tier3"]].tolist() == ["image"]  # clean: 4.4 < tier3's 5.5
    assert lower.index[lower["in_tier2"]].tolist() == ["clean", "image"]


def test_classical_aesthetic_used_when_laion_absent():
    t = table().drop(columns="aes").assign(aes_classical=3.0)
    t.loc["clean", "aes_classical"] = 3.5
    tiers = assign_tiers(apply_rules(t, RuleConfig(), COLS), TierRules(tier2_aes_classical=3.2), COLS)
    assert (tiers["aes_method"] == "classical").all()
    assert tiers.index[tiers["in_tier2"]].tolist() == ["clean"]
    all_nan = table().assign(aes=NAN, aes_classical=7.0)  # an aes column with no values is not "present"
    tiers = assign_tiers(apply_rules(all_nan, RuleConfig(), COLS), TierRules(), COLS)
    assert (tiers["aes_method"] == "classical").all()
    with pytest.raises(ValueError, match="neither 'aes' nor 'aes_classical'"):
        assign_tiers(apply_rules(table().drop(columns="aes"), RuleConfig(), COLS), TierRules(), COLS)


def test_missing_score_column_names_the_rule_and_setting():
    with pytest.raises(ValueError, match=r"rule 'static' needs score column 'motion'.*static_motion: null"):
        apply_rules(table().drop(columns="motion"), RuleConfig(), COLS)
    with pytest.raises(ValueError, match="unknown flag 'caption_rude'"):
        apply_rules(table(), RuleConfig(caption_flags=["caption_rude"]), COLS)


def test_opensora_csv_columns_and_values():
    t = assign_tiers(apply_rules(table(), RuleConfig(), COLS), TierRules(), COLS)
    csv = opensora_csv(t[t["in_tier1"]], TierConfig())
    assert list(csv.columns[:8]) == OPENSORA_COLUMNS
    assert list(csv.columns[8:]) == ["aes", "aes_method", "flow", "ocr", "cmotion", "clip_id", "start_frame",
                                     "end_frame"]
    assert csv["aes"].tolist() == [5.0, 5.0] and csv["ocr"].tolist() == [0.0, 0.0]


# accounting: five ingested files, one of each fate
RAW = {"kept.mp4": "video", "dropped.mp4": "video", "scorefail.mp4": "video", "tooshort.mp4": "video"}


def universe():
    metadata = pd.DataFrame({"id": [ingest_id(p) for p in RAW], "path": [f"/raw/{p}" for p in RAW],
                             "media": list(RAW.values())})
    bad = pd.DataFrame({"relpath": ["broken.mp4"], "path": ["/raw/broken.mp4"], "error_kind": ["truncated"],
                        "error": ["/raw/broken.mp4: ends early"]})
    return ingest_universe(metadata, bad)


def fates():
    kept, dropped, fail, short = (ingest_id(p) for p in RAW)
    clips = pd.DataFrame({"video_id": [kept, kept, dropped, fail, fail],
                          "clip_id": ["k1", "k2", "d1", "f1", "f2"]})
    decided = pd.DataFrame({"video_id": [kept, kept, dropped], "clip_id": ["k1", "k2", "d1"],
                            "drop_rule": ["", "static", "text"]})
    quarantine = pd.DataFrame({"video_id": [ingest_id("broken.mp4"), fail], "step": ["ingest", "score"],
                               "error": ["truncated: ends early", "/raw/scorefail.mp4: scorer flow failed"]})
    split_dropped = pd.DataFrame({"video_id": [short, kept], "rule": ["too_short", "fade"]})
    return clips, decided, quarantine, split_dropped


def test_every_video_accounted_for_once():
    clips, decided, quarantine, split_dropped = fates()
    videos = account_videos(universe(), quarantine, clips, decided, split_dropped, RULES).set_index("path")
    assert videos["status"].to_dict() == {"/raw/kept.mp4": "kept", "/raw/dropped.mp4": "filtered",
                                          "/raw/scorefail.mp4": "quarantined", "/raw/tooshort.mp4": "filtered",
                                          "/raw/broken.mp4": "quarantined"}
    assert videos.loc["/raw/dropped.mp4", ["step", "reason"]].tolist() == ["tier", "text"]
    assert videos.loc["/raw/tooshort.mp4", ["step", "reason"]].tolist() == ["split", "too_short"]
    assert videos.loc["/raw/scorefail.mp4", ["step", "clips_quarantined"]].tolist() == ["score", 2]
    assert videos.loc["/raw/broken.mp4", "reason"] == "truncated: ends early"
    assert videos.loc["/raw/kept.mp4", ["clips", "clips_kept", "clips_filtered", "segments_dropped_at_split"]
                      ].tolist() == [2, 1, 1, 1]
    counts = videos["status"].value_counts()
    assert counts["kept"] + counts["filtered"] + counts["quarantined"] == 5


def test_accounting_errors_name_the_video():
    clips, decided, quarantine, split_dropped = fates()
    with pytest.raises(AccountingError, match="never ingested: \\['nobody'\\]"):
        account_videos(universe(), quarantine, pd.concat([clips, pd.DataFrame({"video_id": ["nobody"],
                                                                               "clip_id": ["n1"]})]),
                       decided, split_dropped, RULES)
    lost = decided[decided["clip_id"] != "k2"]  # a clip that reached no decision and no quarantine
    with pytest.raises(AccountingError, match=f"{ingest_id('kept.mp4')} \\(/raw/kept.mp4\\): 1\\+0\\+0 != 2"):
        account_videos(universe(), quarantine, clips, lost, split_dropped, RULES)
    with pytest.raises(AccountingError, match="tooshort.mp4.*the split lost it"):
        account_videos(universe(), quarantine, clips, decided, split_dropped.iloc[1:], RULES)


def test_step_counts_follow_the_clips_through_every_rule():
    decided = assign_tiers(apply_rules(table(), RuleConfig(), COLS), TierRules(), COLS)
    videos = pd.DataFrame({"status": ["kept", "quarantined"], "step": ["", "ingest"], "clips": [len(decided), 0],
                           "video_id": ["a", "b"], "reason": ["", "truncated"]})
    rows = {r["step"]: r for r in step_counts(videos, decided, 3, list(thresholds(RuleConfig())))}
    assert rows["ingested"]["videos"] == 2 and rows["quarantined at ingest"]["videos"] == 1
    assert rows["clips after split"]["clips"] == len(CASES) and "3 segments" in rows["clips after split"]["note"]
    assert rows["after too_short"]["clips"] == len(CASES) - 2  # short, everything
    assert rows["after duplicate"]["clips"] == len(CASES) - 4  # and small (low_resolution), copy
    assert rows["after caption_transition"]["clips"] == 2 == rows["tier1"]["clips"]
    assert "after image" not in rows  # off by default
    by_rule = {r["rule"]: r for r in rule_counts(decided)}
    assert by_rule["static"] == {"rule": "static", "dropped_first": 1, "failing": 2}
    report = {"profile": "tiny", "steps": list(rows.values()), "rules": list(by_rule.values()),
              "thresholds": thresholds(RuleConfig()), "scores": {}, "plots": [], "quarantined": [],
              "filtered_videos": [], "aesthetic": {"method": "laion", "tier2": 4.5, "tier3": 5.5,
                                                   "tier3_min_short_side": 720},
              "accounting": {"ingested": 2, "kept": 1, "filtered": 0, "quarantined": 1}}
    text = markdown(report)
    assert "| after too_short | 3 | 8 | -2 clips |" in text
    assert "1 kept + 0 filtered + 1 quarantined = 2 ingested" in text
