"""Processes the end-to-end tests start: a real ``mlflow server``, and process probes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """A real `mlflow server` on 127.0.0.1:``port``, its SQLite store and artifacts in
    ``directory`` (start it again on the same port and directory to bring it back)."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{directory / 'server.db'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_mlflow_server(process)
    pytest.fail("mlflow server did not start")


def slow_export_start(directory: Path, seconds: float, python_path: str | None = None) -> str:
    """A ``PYTHONPATH`` (``python_path`` after it) whose ``sitecustomize`` holds the export
    process, and only it, in its start-up for ``seconds``."""
    slow = directory / "slow-start"
    slow.mkdir(exist_ok=True)
    (slow / "sitecustomize.py").write_text(
        "import sys, time\n"
        "if any(arg.endswith('_sidecar.py') for arg in sys.argv):\n"
        f"    time.sleep({seconds})\n"
    )
    return os.pathsep.join(filter(None, [str(slow), python_path]))


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (an ended process whose parent is gone may wait as a
    zombie for a reaper that a container does not have)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def stop_mlflow_server(process: subprocess.Popen[bytes]) -> None:
    """Kill the server and its workers (also when paused)."""
    try:
        os.killpg(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
