"""Every ingested video accounted for: kept + filtered (by rule) + quarantined (with the step and error) = ingested.

Checked per video (its clips: kept + filtered + quarantined = clips after split) and in total; a mismatch is a
bug in the pipeline, raised with the videos it concerns, never a number quietly off in the report.
"""
from __future__ import annotations

import hashlib

import pandas as pd

# pipeline order: a video quarantined by an earlier step never reaches a later one
STEPS = ("ingest", "split", "score", "caption")
VIDEO_COLUMNS = ["video_id", "path", "media", "status", "step", "reason", "clips", "clips_kept",
                 "clips_filtered", "clips_quarantined", "segments_dropped_at_split"]


class AccountingError(RuntimeError):
    """Some video or clip is not accounted for exactly once."""


def ingest_id(relpath: str) -> str:
    """The id data.ingest gives a file: sha256 of its path relative to the source, 16 hex digits."""
    return hashlib.sha256(relpath.encode()).hexdigest()[:16]


def ingest_quarantine_rows(ingest_quarantine: pd.DataFrame) -> pd.DataFrame:
    """data.ingest's quarantine as video_id, step, error rows."""
    return pd.DataFrame({"video_id": [ingest_id(r) for r in ingest_quarantine["relpath"]], "step": "ingest",
                         "error": (ingest_quarantine["error_kind"] + ": " + ingest_quarantine["error"]).tolist()},
                        columns=["video_id", "step", "error"])


def ingest_universe(metadata: pd.DataFrame, ingest_quarantine: pd.DataFrame) -> pd.DataFrame:
    """video_id, path, media of every ingested file: accepted rows, then quarantined ones (ids as ingest makes them)."""
    accepted = metadata[["id", "path", "media"]].rename(columns={"id": "video_id"})
    rejected = pd.DataFrame({"video_id": [ingest_id(r) for r in ingest_quarantine["relpath"]],
                             "path": ingest_quarantine["path"].tolist(), "media": "unknown"})
    universe = pd.concat([accepted, rejected], ignore_index=True)
    dupes = universe["video_id"][universe["video_id"].duplicated()].tolist()
    if dupes:
        raise AccountingError(f"video ids both accepted and quarantined at ingest (or repeated): {dupes[:5]}")
    return universe


def _first_rule(rules: pd.Series, order: tuple[str, ...]) -> str:
    """The rule that dropped most of a video's clips (ties: the earlier rule in the fixed order)."""
    counts = rules.value_counts()
    return sorted(counts.index, key=lambda r: (-counts[r], order.index(r) if r in order else len(order)))[0]


def account_videos(universe: pd.DataFrame, quarantine: pd.DataFrame, clips: pd.DataFrame,
                   decided: pd.DataFrame, split_dropped: pd.DataFrame, rule_order: tuple[str, ...]) -> pd.DataFrame:
    """One row per ingested video: status kept | filtered | quarantined, with the step and rule or error.

    quarantine: video_id, step, error (every step); clips: the split's clip table; decided: the clips that
    reached the rules (video_id, clip_id, drop_rule); split_dropped: video_id, rule of segments the split dropped.
    """
    unknown = sorted(set(clips["video_id"]) - set(universe["video_id"]))
    if unknown:
        raise AccountingError(f"clips of videos that were never ingested: {unknown[:5]}")
    first_q = (quarantine.assign(order=quarantine["step"].map(STEPS.index)).sort_values(["video_id", "order"])
               .drop_duplicates("video_id").set_index("video_id"))
    n_clips = clips.groupby("video_id").size()
    kept = decided[decided["drop_rule"] == ""].groupby("video_id").size()
    filtered = decided[decided["drop_rule"] != ""]
    n_filtered = filtered.groupby("video_id").size()
    dropped = split_dropped.groupby("video_id") if len(split_dropped) else None
    rows = []
    for video in universe.itertuples(index=False):
        vid = video.video_id
        row = {"video_id": vid, "path": video.path, "media": video.media, "clips": int(n_clips.get(vid, 0)),
               "clips_kept": int(kept.get(vid, 0)), "clips_filtered": int(n_filtered.get(vid, 0)),
               "segments_dropped_at_split": int(dropped.size().get(vid, 0)) if dropped is not None else 0}
        if vid in first_q.index:
            q = first_q.loc[vid]
            row |= {"status": "quarantined", "step": q["step"], "reason": q["error"],
                    "clips_quarantined": row["clips"] - row["clips_kept"] - row["clips_filtered"]}
        elif row["clips_kept"]:
            row |= {"status": "kept", "step": "", "reason": "", "clips_quarantined": 0}
        elif row["clips_filtered"]:
            reason = _first_rule(filtered.loc[filtered["video_id"] == vid, "drop_rule"], rule_order)
            row |= {"status": "filtered", "step": "tier", "reason": reason, "clips_quarantined": 0}
        elif row["segments_dropped_at_split"]:
            reason = _first_rule(split_dropped.loc[split_dropped["video_id"] == vid, "rule"], ())
            row |= {"status": "filtered", "step": "split", "reason": reason, "clips_quarantined": 0}
        else:
            raise AccountingError(f"video {vid} ({video.path}): ingested, not quarantined, but no clip, no "
                                  f"dropped segment and no decision: the split lost it")
        rows.append(row)
    table = pd.DataFrame(rows, columns=VIDEO_COLUMNS)
    check(table, len(universe))
    return table


def check(table: pd.DataFrame, ingested: int) -> None:
    """kept + filtered + quarantined = ingested, in total and per video for clips; raises naming the videos."""
    counts = table["status"].value_counts()
    total = sum(int(counts.get(s, 0)) for s in ("kept", "filtered", "quarantined"))
    if total != ingested or len(table) != ingested:
        raise AccountingError(f"kept {counts.get('kept', 0)} + filtered {counts.get('filtered', 0)} + quarantined "
                              f"{counts.get('quarantined', 0)} = {total}, but {ingested} videos were ingested")
    clip_sum = table["clips_kept"] + table["clips_filtered"] + table["clips_quarantined"]
    bad = table[(clip_sum != table["clips"]) | (table["clips_quarantined"] < 0)]
    if len(bad):
        raise AccountingError("clips not accounted for (kept + filtered + quarantined != clips after split) in "
                              + "; ".join(f"{r.video_id} ({r.path}): {r.clips_kept}+{r.clips_filtered}+"
                                          f"{r.clips_quarantined} != {r.clips}" for r in bad.head(5).itertuples()))
