"""The trace backend fails (nothing listens, a real `mlflow server` stopped or paused mid-run):
the calls succeed with unchanged latency, a warning is logged once, nothing raises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import free_port

PROBE = Path(__file__).with_name("backend_probe.py")
CALLS = 40
ENV = {
    **os.environ,
    # The production path: export in the background, as MLflow does by default.
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "true",
    # Keep the probe's exit (MLflow flushes its queue then) short; the calls never wait on it.
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "TRACER_STRICT": "0",
}


def run_probe(uri: str, signal_file: Path | None = None, act: object = None) -> dict:
    args = [sys.executable, str(PROBE), uri, str(CALLS)]
    if signal_file is not None:
        signal_file.write_text("")
        args += ["--signal-file", str(signal_file)]
    probe = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if signal_file is not None:
        deadline = time.monotonic() + 120
        while signal_file.read_text() != "half":
            assert probe.poll() is None, probe.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        act()  # type: ignore[operator]
        signal_file.write_text("go")
    out, err = probe.communicate(timeout=300)
    assert probe.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    # Everything the probe and its export process printed, e.g. MLflow's export warnings.
    result["stderr"] = err.decode()
    return result


def assert_unharmed(result: dict) -> None:
    assert result["calls"] == CALLS
    # Generous: background export must not make calls measurably slower.
    assert result["traced_ms"] <= 3 * result["bare_ms"] + 5, result
    # Once per kind of failure, not once per call.
    assert len(result["warnings"]) <= 3, result["warnings"]
    assert result["stderr"].count("Failed to send trace") <= 1, result["stderr"][-3000:]


def test_nothing_listens_at_the_tracking_uri() -> None:
    result = run_probe(f"http://127.0.0.1:{free_port()}")
    assert_unharmed(result)
    assert result["stderr"].count("Failed to send trace") == 1, result["stderr"][-3000:]


def test_mlflow_server_stopped_mid_run(
    mlflow_server: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    process, url = mlflow_server

    def stop() -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    result = run_probe(url, tmp_path / "signal", stop)
    assert_unharmed(result)
    assert result["stderr"].count("Failed to send trace") == 1, result["stderr"][-3000:]


def test_mlflow_server_paused_mid_run(
    mlflow_server: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    process, url = mlflow_server
    result = run_probe(url, tmp_path / "signal", lambda: os.killpg(process.pid, signal.SIGSTOP))
    assert_unharmed(result)
    os.killpg(process.pid, signal.SIGCONT)
    # Traces sent before the pause were stored by the real server, read back through its API.
    names = read_span_names(url)
    assert len(names) >= CALLS // 2
    assert set(names) == {"chat gpt-4o-mini"}


def read_span_names(url: str) -> list[str]:
    """Every span name stored by the server, read back through its API in a fresh process
    (MLflow's artifact proxy wants the tracking URI from the environment)."""
    code = (
        "import json, mlflow; "
        "traces = mlflow.search_traces(locations=['0'], max_results=500, return_type='list'); "
        "print(json.dumps([s.name for t in traces for s in t.data.spans]))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
