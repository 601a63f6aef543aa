"""`reelforge run` / `evaluate` stop their whole flow process group when they are stopped."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# the "flow": starts a "stage" process that writes its pid, then waits, as flows.pipeline waits on a stage
FLOW = ("import subprocess, sys, time\n"
        "stage = 'import os, sys, time\\nopen(sys.argv[1], \"w\").write(str(os.getpid()))\\ntime.sleep(120)'\n"
        "subprocess.Popen([sys.executable, '-c', stage, sys.argv[1]])\n"
        "time.sleep(120)\n")
CLI = "import sys\nfrom components.cli import run_flow\nsys.exit(run_flow([sys.executable, '-c', sys.argv[1], sys.argv[2]]))\n"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it has exited
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_sigterm_stops_the_flow_and_its_stage_processes(tmp_path):
    pid_file = tmp_path / "stage.pid"
    cli = subprocess.Popen([sys.executable, "-c", CLI, FLOW, str(pid_file)], cwd=ROOT)
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    stage = int(pid_file.read_text())
    assert alive(stage)
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.time() + 10
    while alive(stage) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(stage), "the stage process outlived the stopped command"
