"""eval.vae on a random-init tiny VAE saved as a stage output: scores checked against scikit-image, settings
recorded, missing weights reported as not computed, and the runner logging eval/* to MLflow."""
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from components.evaluation.clips import load_clip
from components.evaluation.eval_vae import EvalVAEConfig, eval_inputs, eval_vae
from components.evaluation.loaders import lpips_heads_path
from components.evaluation.vae_source import load_vae, reconstruct
from components.stage import StageContext
from components.tracking import NoopTracker
from models.vae import VAE_configs, VAE_models

pytestmark = pytest.mark.slow
ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


class _FakeI3D(torch.nn.Module):
    """StyleGAN-V's TorchScript signature with a cheap feature map: pooled 3x4x4 colours through a fixed matrix."""

    def __init__(self):
        super().__init__()
        self.register_buffer("proj", torch.randn(48, 400, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        return F.adaptive_avg_pool3d(x, (1, 4, 4)).flatten(1) @ self.proj


def _write_video(path: Path, frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    colour = rng.integers(40, 215, 3)
    with av.open(str(path), "w") as box:
        stream = box.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
        for t in range(frames):
            img = np.zeros((40, 48, 3), np.uint8)
            img[:] = colour // 3
            x = (4 * t + 7 * seed) % 36
            img[10:26, x : x + 12] = colour  # a block moving right
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)


def _setup(ws: Path, store: Path, with_weights: bool) -> None:
    (ws / "vae" / "stage3").mkdir(parents=True)
    torch.manual_seed(0)
    vae = VAE_models["tiny"]()
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, ws / "vae/stage3/model.safetensors")
    (ws / "vae/stage3/vae_config.json").write_text(json.dumps(asdict(VAE_configs["tiny"])))
    rows = []
    (ws / "videos").mkdir()
    for i in range(3):
        path = ws / "videos" / f"v{i}.mp4"
        _write_video(path, 20, i)
        rows.append({"clip_id": f"v{i}-000000-000020", "path": str(path), "media": "video", "start_frame": 0,
                     "num_frames": 20})
    rows.append({"clip_id": "img-000000-000001", "path": "/nowhere.png", "media": "image", "start_frame": 0,
                 "num_frames": 1})
    (ws / "curate" / "tier").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(ws / "curate/tier/tier1.parquet")
    if with_weights:
        (store / "lpips").mkdir(parents=True)
        (store / "i3d").mkdir(parents=True)
        gen = torch.Generator().manual_seed(1)
        trunk = {}
        for i, (cout, cin, k) in ALEX_CONVS.items():
            trunk[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * 0.05
            trunk[f"features.{i}.bias"] = torch.zeros(cout)
        torch.save(trunk, store / "lpips/alexnet-owt-7be5be79.pth")
        torch.jit.save(torch.jit.script(_FakeI3D()), str(store / "i3d/i3d_torchscript.pt"))


def _cfg(store: Path, **over) -> EvalVAEConfig:
    base = {"clips": {"fraction": 1.0, "frames": 17, "resolution": 32}, "weights": {"store": str(store)},
            "previews": 2, "device": "cpu"}
    return EvalVAEConfig.model_validate({**base, **over})


def _run(ws: Path, cfg: EvalVAEConfig) -> dict:
    out = ws / "eval" / "vae"
    ctx = StageContext(name="eval.vae", profile="tiny", cfg=cfg, workspace=ws, out=out,
                       inputs=eval_inputs(cfg, ws), checkpoint_dir=ws / "ckpt", tracker=NoopTracker())
    return eval_vae(ctx)


def test_scores_match_scikit_image_and_settings_are_recorded(tmp_path):
    torch.set_num_threads(1)
    ws, store = tmp_path / "ws", tmp_path / "weights"
    _setup(ws, store, with_weights=True)
    cfg = _cfg(store)
    metrics = _run(ws, cfg)
    report = json.loads((ws / "eval/vae/metrics.json").read_text())
    scores = report["scores"]

    # ground truth: the same clips through the same VAE, scored by scikit-image frame by frame
    vae, info = load_vae(str(ws / "vae/stage3"), cfg.vae)
    held = pd.read_parquet(ws / "eval/vae/heldout_clips.parquet")
    assert sorted(held.clip_id) == ["v0-000000-000020", "v1-000000-000020", "v2-000000-000020"]  # image skipped
    psnrs, ssims = [], []
    for row in held.to_dict("records"):
        x = load_clip(row, cfg.clips).unsqueeze(0)
        rec = reconstruct(vae, x)
        a, b = ((x[0] + 1) / 2).double().numpy(), ((rec[0] + 1) / 2).double().numpy()
        for t in range(17):
            fa, fb = a[:, t].transpose(1, 2, 0), b[:, t].transpose(1, 2, 0)
            psnrs.append(peak_signal_noise_ratio(fa, fb, data_range=1))
            ssims.append(structural_similarity(fa, fb, gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=1, channel_axis=2))
    assert abs(scores["psnr"]["value"] - np.mean(psnrs)) < 1e-3
    assert abs(scores["ssim"]["value"] - np.mean(ssims)) < 1e-3
    assert metrics["psnr"] == scores["psnr"]["value"] and metrics["clips"] == 3.0

    for name in ("psnr", "ssim"):
        s = scores[name]
        assert (s["N"], s["frames"], s["resolution"]) == (3, 17, "32x32")
        assert "area" in s["resize"] and "centre crop 32x32" in s["resize"]
    assert report["vae"]["sha256"] == hashlib.sha256((ws / "vae/stage3/model.safetensors").read_bytes()).hexdigest()
    assert report["vae"]["architecture"].endswith("vae_config.json")

    i3d_sha = hashlib.sha256((store / "i3d/i3d_torchscript.pt").read_bytes()).hexdigest()
    fvd = scores["rfvd"]
    assert fvd["weights"] == {"file": f"{store}/i3d/i3d_torchscript.pt", "sha256": i3d_sha}
    assert (fvd["N"], fvd["frames"], fvd["resolution"]) == (3, 16, "224x224")
    assert fvd["value"] > 0 and metrics["rfvd"] == fvd["value"]

    if lpips_heads_path("alex") is not None:
        lp = scores["lpips"]
        assert lp["value"] > 0 and metrics["lpips"] == lp["value"]
        assert [w["file"].rsplit("/", 1)[-1] for w in lp["weights"]] == ["alexnet-owt-7be5be79.pth", "alex.pth"]
    else:
        assert "pip install --no-deps lpips==0.1.4" in scores["lpips"]["reason"]

    previews = sorted(p.name for p in (ws / "eval/vae/samples").iterdir())
    assert len(previews) == 4 and previews[0].endswith(".gif") and previews[1].endswith(".png")
    from PIL import Image
    assert Image.open(ws / "eval/vae/samples" / previews[1]).size == (4 * 32, 2 * 32)  # 4 frames, clip over recon


def test_missing_weights_are_reported_not_computed(tmp_path):
    torch.set_num_threads(1)
    ws, store = tmp_path / "ws", tmp_path / "empty-store"
    _setup(ws, store, with_weights=False)
    metrics = _run(ws, _cfg(store, previews=0))
    scores = json.loads((ws / "eval/vae/metrics.json").read_text())["scores"]
    assert set(metrics) == {"psnr", "ssim", "clips"}
    for name, file in (("lpips", "lpips/alexnet-owt-7be5be79.pth"), ("rfvd", "i3d/i3d_torchscript.pt")):
        assert scores[name]["value"] is None and scores[name]["status"] == "not computed"
        assert scores[name]["reason"].endswith(f"{store}/{file}")
    assert not (ws / "eval/vae/samples").exists()


def test_runner_logs_eval_metrics_to_mlflow(workspace, tmp_path, monkeypatch):
    import mlflow

    from components import runner, tracking

    torch.set_num_threads(1)
    store = tmp_path / "weights"
    _setup(workspace, store, with_weights=True)
    monkeypatch.setenv("REELFORGE_STAGE_MODULES", "components.evaluation.eval_vae")
    result = runner.run_stage("eval.vae", "tiny", sets=[f"weights.store={store}", "clips.fraction=1.0",
                                                        "clips.resolution=32", "previews=1", "device=cpu"])
    report = json.loads((workspace / "eval/vae/metrics.json").read_text())
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(result["mlflow_run_id"])
    assert run.data.metrics["eval/psnr"] == pytest.approx(report["scores"]["psnr"]["value"])
    assert run.data.metrics["eval/ssim"] == pytest.approx(report["scores"]["ssim"]["value"])
    assert run.data.metrics["eval/rfvd"] == pytest.approx(report["scores"]["rfvd"]["value"])
    assert run.data.tags["reelforge.eval.rfvd"] == "computed"
