"""`reelforge ui` starts the MLflow UI on the workspace store and a Prefect server, both answering on loopback."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ok(url: str, deadline: float) -> bytes:
    last = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return resp.read()
        except OSError as err:
            last = err
        time.sleep(1)
    raise AssertionError(f"{url} did not answer: {last}")


def test_ui_serves_mlflow_and_prefect(workspace, tmp_path):
    mlflow_port, prefect_port = free_port(), free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    proc = subprocess.Popen([sys.executable, "-m", "components.cli", "ui", "--mlflow-port", str(mlflow_port),
                             "--prefect-port", str(prefect_port)], env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        assert wait_ok(f"http://127.0.0.1:{mlflow_port}/health", deadline) == b"OK"
        assert wait_ok(f"http://127.0.0.1:{prefect_port}/api/health", deadline) == b"true"
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)  # stopping waits up to 15 s per server; slow under a loaded suite
        assert f"http://127.0.0.1:{mlflow_port}" in out and f"http://127.0.0.1:{prefect_port}" in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
