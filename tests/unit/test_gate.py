"""The registry gate's decision: direction, tolerance, fallbacks between metrics, missing metrics, ties."""
import pytest
from pydantic import ValidationError

from components.evaluation.gate import GateConfig, GateMetric, compare, decide, decision_tags

VAE = GateConfig(rule="first", metrics=[GateMetric(name="eval.vae/rfvd", direction="lower"),
                                        GateMetric(name="eval.vae/psnr", direction="higher", tolerance=0.1)])


def test_lower_is_better_beats_only_by_more_than_the_tolerance():
    metric = GateMetric(name="eval.vae/rfvd", direction="lower", tolerance=5.0)
    assert compare(metric, 90.0, 100.0).beats and compare(metric, 90.0, 100.0).improvement == 10.0
    assert not compare(metric, 95.0, 100.0).beats  # exactly the tolerance is a tie: the champion stays
    assert not compare(metric, 110.0, 100.0).beats and compare(metric, 110.0, 100.0).improvement == -10.0


def test_first_rule_uses_rfvd_when_both_have_it():
    d = decide(VAE, {"eval.vae/rfvd": 80.0, "eval.vae/psnr": 20.0}, {"eval.vae/rfvd": 100.0, "eval.vae/psnr": 30.0}, "1")
    assert d.promote and d.outcome == "promoted"
    assert [c.metric for c in d.comparisons] == ["eval.vae/rfvd"]  # PSNR, worse, is not consulted


def test_first_rule_falls_back_to_psnr_when_the_champion_has_no_rfvd():
    d = decide(VAE, {"eval.vae/rfvd": 80.0, "eval.vae/psnr": 30.05}, {"eval.vae/psnr": 30.0}, "3")
    assert not d.promote and d.outcome == "kept_champion"
    (c,) = d.comparisons
    assert (c.metric, c.candidate, c.champion, c.beats) == ("eval.vae/psnr", 30.05, 30.0, False)
    assert c.improvement == pytest.approx(0.05)
    assert "does not beat" in d.reason and "champion v3" in d.reason


def test_all_rule_needs_every_metric_better():
    cfg = VAE.model_copy(update={"rule": "all"})
    champion = {"eval.vae/rfvd": 100.0, "eval.vae/psnr": 30.0}
    assert decide(cfg, {"eval.vae/rfvd": 90.0, "eval.vae/psnr": 31.0}, champion, "1").promote
    mixed = decide(cfg, {"eval.vae/rfvd": 90.0, "eval.vae/psnr": 29.0}, champion, "1")
    assert not mixed.promote and [c.beats for c in mixed.comparisons] == [True, False]
    missing = decide(cfg, {"eval.vae/psnr": 31.0}, champion, "1")
    assert missing.outcome == "missing_metric" and "candidate has no eval.vae/rfvd" in missing.reason


def test_missing_metric_never_promotes_even_without_a_champion():
    d = decide(VAE, {"eval.vae/ssim": 0.9}, None)
    assert not d.promote and d.outcome == "missing_metric"
    assert d.reason == "candidate has none of the gate metrics ['eval.vae/rfvd', 'eval.vae/psnr']"


def test_first_version_with_the_metric_becomes_champion():
    d = decide(VAE, {"eval.vae/psnr": 25.0}, None)
    assert d.promote and d.outcome == "first_champion" and "eval.vae/psnr (25)" in d.reason


def test_champion_sharing_no_metric_keeps_the_alias():
    d = decide(VAE, {"eval.vae/psnr": 40.0}, {"eval.vae/ssim": 0.5}, "2")
    assert not d.promote and d.outcome == "missing_metric" and "champion v2 shares none" in d.reason


def test_decision_tags_carry_the_numbers():
    d = decide(VAE, {"eval.vae/psnr": 31.0}, {"eval.vae/psnr": 30.0}, "1")
    tags = decision_tags(d, "run123")
    assert tags["reelforge.gate.outcome"] == "promoted" and tags["reelforge.gate.promoted"] == "true"
    assert tags["reelforge.gate.candidate.eval.vae/psnr"] == "31" and tags["reelforge.gate.champion.eval.vae/psnr"] == "30"
    assert tags["reelforge.gate.champion_version"] == "1" and tags["reelforge.gate.eval_run_id"] == "run123"


def test_config_rejects_unknown_direction_and_empty_metrics():
    with pytest.raises(ValidationError, match="direction"):
        GateMetric(name="x", direction="up")
    with pytest.raises(ValidationError, match="metrics"):
        GateConfig(metrics=[])
