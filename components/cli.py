"""The `reelforge` command: one way to run every stage, the pipeline, the data tools and the UIs."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="ReelForge: raw video → curated data → video VAE → video DiT → evaluation.", no_args_is_help=True)
stage_app = typer.Typer(help="Run and list pipeline stages.", no_args_is_help=True)
data_app = typer.Typer(help="Synthesise, ingest, version and validate raw data.", no_args_is_help=True)
weights_app = typer.Typer(help="The weights store.", no_args_is_help=True)
app.add_typer(stage_app, name="stage")
app.add_typer(data_app, name="data")
app.add_typer(weights_app, name="weights")
console = Console()

PROFILE = typer.Option("tiny", "--profile", "-p", help="Recipe profile: configs/<profile>/")
SETS = typer.Option(None, "--set", "-s", help="Override a config value: key.sub=value (repeatable)")


def run_flow(cmd: list[str]) -> int:
    """Run a flow process in a process group of its own and pass SIGINT and SIGTERM on to the whole group.

    Stopping this command then also stops the flow's stage processes and its ephemeral Prefect server; with the
    default handlers a SIGTERM killed only this process and the flow ran on, orphaned, beside any re-run.
    Returns the flow's exit status (128 + signal number when a signal ended it).
    """
    proc = subprocess.Popen(cmd, start_new_session=True)

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _run_or_exit(name: str, profile: str, sets: list[str] | None) -> None:
    """Run a stage; on failure print the reason and exit with the code the orchestrator understands."""
    from components.errors import exit_code_for
    from components.runner import run_stage

    try:
        result = run_stage(name, profile, sets or [])
    except Exception as err:  # the message names the stage, file or field: print it, not a traceback
        console.print(f"[red]stage {name} failed:[/red] {err}")
        raise typer.Exit(exit_code_for(err))
    console.print(f"[green]{name}[/green] done in {result['wall_time_s']:.1f}s; run {result['mlflow_run_id']}; "
                  f"output {result['outputs']['dir']}")
    if result.get("metrics"):
        console.print(json.dumps(result["metrics"], indent=1, default=str))


@stage_app.command("run")
def stage_run(name: str, profile: str = PROFILE, set_: Optional[List[str]] = SETS) -> None:
    """Run one stage: resolve its config, launch it (in-process or torchrun), track it, write its outputs."""
    _run_or_exit(name, profile, set_)


@stage_app.command("list")
def stage_list() -> None:
    """List every registered stage with its output folder."""
    from components.stage import load_all

    table = Table("stage", "output (in workspace)", "description")
    for name, spec in sorted(load_all().items()):
        table.add_row(name, spec.output, spec.description)
    console.print(table)


@data_app.command("synth")
def data_synth(
    profile: str = PROFILE,
    out: Path = typer.Option(Path("data"), help="Folder to write the corpus into (DVC tracks ./data)"),
    set_: Optional[List[str]] = SETS,
    force: bool = typer.Option(False, help="Regenerate even when the folder already holds this corpus"),
) -> None:
    """Write the deterministic synthetic corpus with its ground truth (the tiny profile's raw data)."""
    from components.data.synth import GROUND_TRUTH, SynthConfig, synthesize, unlisted_files
    from components.config import resolve

    cfg = resolve("data.synth", SynthConfig, profile, set_ or [])
    truth = out / GROUND_TRUTH
    written = json.loads(truth.read_text()) if not force and truth.exists() else {}
    if written.get("config") == cfg.model_dump(mode="json"):
        console.print(f"{out} already holds this corpus (seed {cfg.seed}); --force regenerates it")
        extra = unlisted_files(out, written)
        if extra:  # e.g. left by an older synth that did not clean up: ingest would take them in
            shown = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
            console.print(f"{out} also holds {len(extra)} file(s) its ground_truth.json does not list ({shown}): "
                          "ingest reads them too; remove them to use the corpus alone", style="yellow", markup=False)
        return
    started = time.time()
    gt = synthesize(out, cfg)
    console.print(f"wrote {len(gt['videos'])} videos, {len(gt['images'])} images, {len(gt['bad_files'])} planted bad files "
                  f"to {out} in {time.time() - started:.1f}s")


@data_app.command("ingest")
def data_ingest(profile: str = PROFILE, set_: Optional[List[str]] = SETS) -> None:
    """Probe every raw input; write metadata (Parquet + Open-Sora CSV) and the quarantine table."""
    _run_or_exit("data.ingest", profile, set_)


@data_app.command("version")
def data_version(profile: str = PROFILE, set_: Optional[List[str]] = SETS) -> None:
    """dvc add + push the raw data folder; tag the DVC hash on the MLflow run."""
    _run_or_exit("data.version", profile, set_)


@data_app.command("validate")
def data_validate(profile: str = PROFILE, set_: Optional[List[str]] = SETS) -> None:
    """Run the Great Expectations suite on the metadata; build data docs."""
    _run_or_exit("data.validate", profile, set_)


@app.command("run")
def run(
    profile: str = PROFILE,
    from_stage: Optional[str] = typer.Option(None, "--from", help="Start at this stage, reusing upstream outputs"),
    no_dvc: bool = typer.Option(False, help="Run stages directly instead of through `dvc repro`"),
    stop_after: Optional[str] = typer.Option(None, "--stop-after", help="End after this segment: data, curate, vae, adapt, pretrain, eval"),
) -> None:
    """Run the whole pipeline as one Prefect flow (ephemeral Prefect server unless PREFECT_API_URL is set)."""
    cmd = [sys.executable, "-m", "flows.pipeline", "--profile", profile]
    if from_stage:
        cmd += ["--from", from_stage]
    if stop_after:
        cmd += ["--stop-after", stop_after]
    if no_dvc:
        cmd.append("--no-dvc")
    raise typer.Exit(run_flow(cmd))


@app.command("evaluate")
def evaluate(
    kind: str = typer.Option("dit", "--kind", "-k", help="dit or vae"),
    profile: str = PROFILE,
    version: Optional[str] = typer.Option(None, help="Version number or alias; default: register the current output"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override one eval stage's config: "
                                             "STAGE.KEY=VALUE, e.g. eval.adherence.samples=8 (repeatable)"),
) -> None:
    """Evaluate a model version, write the report, and move `champion` if it beats the current one (Prefect flow)."""
    cmd = [sys.executable, "-m", "flows.evaluate", "--kind", kind, "--profile", profile]
    if version:
        cmd += ["--version", version]
    for item in set_ or []:
        cmd += ["--set", item]
    raise typer.Exit(run_flow(cmd))


@app.command("deploy")
def deploy(
    profile: str = PROFILE,
    source: Optional[str] = typer.Option(None, help="Project folder or git URL workers pull (default: this checkout)"),
    pool: str = typer.Option("reelforge-process", help="Prefect work pool (created as a process pool if missing)"),
    paused: bool = typer.Option(False, help="Register the schedules paused"),
    gpu_slots: int = typer.Option(1, help="Training/evaluation tasks allowed at once (tag limit gpu-heavy), server-wide"),
) -> None:
    """Register the scheduled deployments (pipeline, data refresh, nightly evaluation) on PREFECT_API_URL."""
    cmd = [sys.executable, "-m", "flows.deploy", "--profile", profile, "--pool", pool, "--gpu-slots", str(gpu_slots)]
    if source:
        cmd += ["--source", source]
    if paused:
        cmd.append("--paused")
    raise typer.Exit(subprocess.run(cmd).returncode)


@app.command("ui")
def ui(
    mlflow_port: int = typer.Option(5000, help="MLflow UI port"),
    prefect_port: int = typer.Option(4200, help="Prefect server port"),
    host: str = typer.Option("127.0.0.1", help="Interface to bind"),
) -> None:
    """Start the MLflow UI on the workspace store and a Prefect server; print both URLs; Ctrl-C stops both."""
    from components.tracking import artifact_root, tracking_uri

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # a parent may start us with SIGINT ignored (Python then installs no Ctrl-C handler): set it, and SIGTERM too
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)

    # each server in its own session, so stopping it also stops the workers it forked; their logs go to stderr,
    # so stdout (the URLs) closes when this command ends even if a server's helper outlives it
    procs = [
        subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri(),
                          "--default-artifact-root", artifact_root(), "--host", host, "--port", str(mlflow_port)],
                         start_new_session=True, stdout=sys.stderr),
        subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(prefect_port)],
                         start_new_session=True, stdout=sys.stderr),
    ]
    console.print(f"MLflow UI:  http://{host}:{mlflow_port}\nPrefect UI: http://{host}:{prefect_port}\n"
                  f"Point flows at it: export PREFECT_API_URL=http://{host}:{prefect_port}/api")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(procs)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each server's process group, then SIGKILL what is still there after 15 s."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)


@weights_app.command("check")
def weights_check(
    profile: str = PROFILE,
    store: Optional[str] = typer.Option(None, help="Folder or s3:// prefix (default REELFORGE_WEIGHTS or workspace/weights)"),
    verify: bool = typer.Option(True, help="Verify sha256 of present files"),
) -> None:
    """Say which weights a profile needs, which are present, and which are missing; exit 1 if any is missing."""
    from components.weights import check, store_uri

    statuses = check(profile, store, verify)
    table = Table("weight", "status", "path", "used by", "detail", title=f"weights for profile {profile} in {store or store_uri()}")
    colours = {"present": "green", "unpinned": "yellow", "missing": "red", "mismatch": "red"}
    for s in statuses:
        table.add_row(s.name, f"[{colours[s.status]}]{s.status}[/]", s.path, s.used_by, s.detail)
    console.print(table)
    bad = [s for s in statuses if s.status in ("missing", "mismatch")]
    if bad:
        console.print(f"[red]{len(bad)} of {len(statuses)} weights missing or mismatched[/red]")
        raise typer.Exit(1)


@app.command("sample")
def sample(
    prompt: str = typer.Argument(..., help="What to generate; score controls are appended to it"),
    model: str = typer.Option(..., "--model", "-m", help="Stage output folder, MLflow run id, or models:/name@alias"),
    mode: str = typer.Option("t2v", help="t2v | i2v | continue | interpolate"),
    image: Optional[str] = typer.Option(None, help="First frame (i2v, interpolate): an image or video file"),
    last_image: Optional[str] = typer.Option(None, help="Last frame (interpolate)"),
    video: Optional[str] = typer.Option(None, help="Video whose last frames the new clip continues"),
    resolution: str = typer.Option("64px", help="Bucket resolution: 64px … or 240p, 360p, 720p …"),
    aspect_ratio: str = typer.Option("1.00", help="Height / width label: 0.56, 0.75, 1.00, 1.78 …"),
    frames: int = typer.Option(17, help="Length in pixel frames"),
    fps: float = typer.Option(8.0, help="fps condition and fps of the written media"),
    steps: int = typer.Option(30, help="Sampling steps"),
    cfg: float = typer.Option(7.0, help="Classifier-free guidance scale"),
    seed: int = typer.Option(0, help="Noise seed: the same seed gives the same video"),
    aesthetic: Optional[float] = typer.Option(None, help="Score control: aesthetic score"),
    motion: Optional[float] = typer.Option(None, help="Score control: motion score"),
    camera: Optional[str] = typer.Option(None, help="Score control: camera motion (pan_left, tilt_up, static …)"),
    vae: Optional[str] = typer.Option(None, help="VAE folder instead of the one the model was trained with"),
    out: Path = typer.Option(Path("samples"), help="Folder for <name>.mp4/.gif/.safetensors/.json"),
    name: str = typer.Option("sample", help="File name stem"),
    upscale: int = typer.Option(1, help="Nearest-neighbour enlargement of the written media"),
) -> None:
    """Generate a video (text, image, continuation or interpolation) from a trained DiT; write mp4 + gif."""
    from components.sampling import SampleRequest, sample_to_folder
    from components.workspace import workspace

    try:
        request = SampleRequest(prompt=prompt, mode=mode, image=image, last_image=last_image, video=video,
                                resolution=resolution, aspect_ratio=aspect_ratio, num_frames=frames, fps=fps,
                                steps=steps, cfg_scale=cfg, seed=seed, aesthetic=aesthetic, motion=motion,
                                camera=camera)
        paths = sample_to_folder(model, request, out, workspace(), vae, name, upscale)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]sample failed:[/red] {err}")
        raise typer.Exit(1)
    console.print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))


def main() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    app()


if __name__ == "__main__":
    main()
