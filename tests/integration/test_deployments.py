"""`reelforge deploy` on a loopback Prefect server: the deployments, a process worker running data-refresh, MLflow runs."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest
import yaml

from tests.conftest import make_project

pytestmark = pytest.mark.slow

SERVER_START_S = 240  # a Prefect server can take a minute to migrate its database on a loaded 2-core machine
FLOW_RUN_S = 420

# Reads the server's state through the Prefect client in a fresh interpreter (the env names the server).
QUERY = """
import asyncio, json, sys
from prefect.client.orchestration import get_client

async def main(what, arg):
    async with get_client() as client:
        if what == "deployments":
            pool = await client.read_work_pool("reelforge-process")
            limit = await client.read_concurrency_limit_by_tag("gpu-heavy")
            deps = await client.read_deployments()
            out = {"pool_type": pool.type, "gpu_heavy": limit.concurrency_limit, "deployments": {
                d.name: {"entrypoint": d.entrypoint, "pool": d.work_pool_name, "parameters": d.parameters,
                         "schedules": sorted([s.schedule.cron, s.parameters.get("model_kind", "")] for s in d.schedules)}
                for d in deps}}
        elif what == "trigger":
            from prefect.deployments import run_deployment
            run = await run_deployment(arg, timeout=0)
            out = {"id": str(run.id)}
        else:
            run = await client.read_flow_run(arg)
            out = {"state": run.state.type.value, "message": run.state.message}
        print("RESULT " + json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited {proc.returncode} before answering")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.read() == b"true":
                    return
        time.sleep(2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


def query(env: dict, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", QUERY, *args], env=env, capture_output=True, text=True, timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"query {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after 20 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["overrides"]["data"]["synth"] = {"n_videos": 3, "n_images": 1}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REELFORGE_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", REELFORGE_SYSTEM_METRICS="0",
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}")
    return root, env, port


def test_deployments_run_on_the_process_pool(project, tmp_path):
    root, env, port = project
    procs = []
    try:
        with open(tmp_path / "server.log", "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                           "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        wait_healthy(f"http://127.0.0.1:{port}/api/health", procs[0], SERVER_START_S)

        for _ in range(2):  # deploying again updates the deployments in place (no doubled schedules)
            deploy = subprocess.run([sys.executable, "-m", "components.cli", "deploy", "--profile", "tiny", "--source",
                                     str(root)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
            assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

        state = query(env, "deployments")
        assert state["pool_type"] == "process" and state["gpu_heavy"] == 1
        deps = state["deployments"]
        assert set(deps) == {"reelforge-pipeline", "data-refresh", "nightly-evaluation"}
        assert all(d["pool"] == "reelforge-process" and d["parameters"]["profile"] == "tiny" for d in deps.values())
        assert deps["nightly-evaluation"]["schedules"] == [["0 2 * * *", "dit"], ["0 2 * * *", "vae"]]
        assert deps["data-refresh"]["entrypoint"] == "flows/data.py:data_flow"
        assert deps["reelforge-pipeline"]["schedules"] == [["0 3 * * 0", ""]]

        run_id = query(env, "trigger", "data_flow/data-refresh")["id"]
        with open(tmp_path / "worker.log", "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool",
                                           "reelforge-process", "--run-once", "--limit", "1"], cwd=tmp_path, env=env,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        procs[-1].wait(timeout=FLOW_RUN_S)
        final = query(env, "state", run_id)
        assert final["state"] == "COMPLETED", f"{final}\n{(tmp_path / 'worker.log').read_text()[-6000:]}"
    finally:
        for proc in reversed(procs):
            stop(proc)

    mlflow.set_tracking_uri(f"sqlite:///{root / 'workspace' / 'mlflow' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["reelforge"], output_format="list",
                              filter_string=f"tags.`reelforge.prefect_flow_run_id` = '{run_id}'")
    by_stage = {r.data.tags["reelforge.stage"]: r for r in runs}
    assert set(by_stage) == {"data.ingest", "data.version", "data.validate"}
    assert all(r.info.status == "FINISHED" for r in runs)
    truth = json.loads((root / "data" / "ground_truth.json").read_text())
    assert by_stage["data.ingest"].data.metrics["ingest/accepted"] == len(truth["videos"]) + len(truth["images"])
