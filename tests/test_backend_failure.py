"""The trace backend fails (nothing listens, a real `mlflow server` stopped, paused, or stopped
and started again mid-run): no call waits on it, the first one included; each kind of warning
appears once; traces wait and are written when the server is back; ``tracer.export.flush()``
returns within about its time-out and says when they are not written. MLflow's own settings
are left as users have them (its HTTP retries included) except where a test says otherwise."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import free_port, start_mlflow_server, stop_mlflow_server

PROBE = Path(__file__).with_name("backend_probe.py")
CALLS = 40
ENV = {**os.environ, "TRACER_STRICT": "0", "PYTHONFAULTHANDLER": "1"}


def run_probe(
    uri: str,
    signal_file: Path | None = None,
    act: Callable[[], None] | None = None,
    back: Callable[[], None] | None = None,
    **env: str,
) -> dict:
    """Run the probe against ``uri``; ``act`` breaks the backend after half the calls and
    ``back`` (if given) brings it back once the probe has flushed."""
    args = [sys.executable, str(PROBE), uri, str(CALLS)]
    if signal_file is not None:
        signal_file.write_text("")
        args += ["--signal-file", str(signal_file)]
    probe = subprocess.Popen(
        args, env={**ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def wait_for(word: str) -> None:
        deadline = time.monotonic() + 180
        while signal_file.read_text() != word:  # type: ignore[union-attr]
            assert probe.poll() is None, probe.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, word
            time.sleep(0.05)

    if signal_file is not None:
        wait_for("half")
        act()  # type: ignore[misc]
        signal_file.write_text("go")
        wait_for("flushed")
        if back is not None:
            back()
        signal_file.write_text("back" if back is not None else "done")
    try:
        out, err = probe.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        probe.send_signal(signal.SIGABRT)  # faulthandler prints where each thread is
        try:
            _, err = probe.communicate(timeout=60)
        except subprocess.TimeoutExpired as again:  # a child of its holds the pipe open
            err = again.stderr or b""
        raise AssertionError(err.decode()[-6000:]) from None
    assert probe.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    # Everything the probe and its export process printed.
    result["stderr"] = err.decode()
    return result


def assert_unharmed(result: dict) -> None:
    assert result["calls"] == CALLS
    # Generous for a shared machine: the calls never wait on the backend.
    assert result["traced_ms"] <= 3 * result["bare_ms"] + 5, result
    # Each kind of warning once (MLflow's, the HTTP library's retries, the tracer's), not once
    # per call or per trace: a kind is the logger and the start of the message, numbers aside.
    kinds = [re.sub(r"\d+", "N", line)[:60] for line in result["warnings"]]
    assert len(kinds) == len(set(kinds)), result["warnings"]
    assert result["stderr"].count("Retrying (Retry(") <= 1, result["stderr"][-3000:]
    assert_flushes_bounded(result)


def assert_flushes_bounded(result: dict) -> None:
    """Each of the probe's flushes, ``export.flush(timeout=T)``, returned within about ``T``,
    whatever the server did. Generous for a shared machine; the flush after a server was
    killed took more than 200 s when MLflow's own queue held writes to it (with MLflow's HTTP
    retries) and the flush waited for that queue without a bound."""
    bound = result["flush_timeout"] + 20
    for when, took in result["flush_s"].items():
        assert all(seconds < bound for seconds in took), (when, took, result["stderr"][-3000:])
    assert result["flush_s"]["after_fault"], result["flush_s"]


def test_nothing_listens_at_the_tracking_uri() -> None:
    """The usual production set-up, `MLFLOW_EXPERIMENT_ID` and a tracking server, with the
    server down: MLflow would check the experiment on the caller's thread first, for about
    four minutes of retries (autolog does); the tracer's first call does not wait."""
    result = run_probe(f"http://127.0.0.1:{free_port()}", MLFLOW_EXPERIMENT_ID="1")
    assert_unharmed(result)
    assert result["first_traced_ms"] < 2000 + 3 * result["first_bare_ms"], result
    assert result["flushed"] is False  # not written, and said so
    lost = [w for w in result["warnings"] if "not written" in w or "unreachable" in w]
    assert lost, result["warnings"]
    # At exit the last attempt fails too, and the count of lost traces is reported.
    assert f"{CALLS + 1} trace(s) were not written" in result["stderr"], result["stderr"][-3000:]


def test_mlflow_server_stopped_mid_run(tmp_path: Path) -> None:
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    try:
        result = run_probe(
            f"http://127.0.0.1:{port}", tmp_path / "signal", lambda: stop_mlflow_server(server)
        )
    finally:
        stop_mlflow_server(server)
    assert_unharmed(result)
    assert result["flushed"] is False
    # The first half (and the warm-up call) were written before the server went away.
    assert result["stats"]["written"] == CALLS // 2 + 1


def test_mlflow_server_stopped_and_started_again(tmp_path: Path) -> None:
    """Traces recorded while the server is down wait, and are written when it is back."""
    port = free_port()
    servers = [start_mlflow_server(tmp_path, port)]
    try:
        result = run_probe(
            f"http://127.0.0.1:{port}",
            tmp_path / "signal",
            lambda: stop_mlflow_server(servers[0]),
            lambda: servers.append(start_mlflow_server(tmp_path, port)),
        )
        names = read_span_names(f"http://127.0.0.1:{port}")
    finally:
        for server in servers:
            stop_mlflow_server(server)
    assert_unharmed(result)
    assert result["flushed"] is False  # while it was down
    assert result["written_after_restart"] is True
    assert result["stats"]["written"] == CALLS + 1
    assert result["stats"]["failed"] == result["stats"]["dropped"] == 0
    assert names == ["chat gpt-4o-mini"] * (CALLS + 1)


def test_mlflow_server_paused_mid_run(tmp_path: Path) -> None:
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    try:
        result = run_probe(
            f"http://127.0.0.1:{port}",
            tmp_path / "signal",
            lambda: os.killpg(server.pid, 19),  # SIGSTOP
            # A paused server answers nothing: MLflow's request time-out decides how long
            # each attempt of the export process takes.
            MLFLOW_HTTP_REQUEST_TIMEOUT="2",
        )
        os.killpg(server.pid, 18)  # SIGCONT
        names = read_span_names(f"http://127.0.0.1:{port}")
    finally:
        stop_mlflow_server(server)
    assert_unharmed(result)
    # Traces sent before the pause were stored by the real server, read back through its API.
    assert len(names) >= CALLS // 2 + 1, (result["stats"], result["stderr"][-3000:])
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


ONE_BAD_TRACE = """
import os, time, mlflow
from openai import OpenAI
from tracer import TracedClient, export
from tracer.devserver import DevServer

mlflow.set_experiment("one-bad-trace")
with DevServer() as server:
    client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0,
                    http_client=TracedClient())
    for question in ["POISON first", *[f"healthy {i}" for i in range(20)]]:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    ok = export.flush(timeout=60)
    print(ok, export.export_process().stats()["written"], export.export_process().stats()["failed"])
"""


def test_one_trace_the_store_refuses_fails_alone(tmp_path: Path) -> None:
    """A tracking server that answers HTTP 500 to one trace's writes only (the proxy rejects
    any body holding the marker): the 20 traces after it are written, and it alone is reported
    failed, with the store's answer, not as an unreachable store."""
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    proxy = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("poison_proxy.py")),
            f"http://127.0.0.1:{port}",
            "POISON",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proxy.stdout.readline().strip()  # type: ignore[union-attr]
        env = {k: v for k, v in ENV.items() if not k.startswith("MLFLOW_")}
        done = subprocess.run(
            [sys.executable, "-c", ONE_BAD_TRACE],
            env={**env, "MLFLOW_TRACKING_URI": url},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["False", "20", "1"], done.stderr[-3000:]
        assert "answered HTTP 500 3 times for this trace" in done.stderr
        assert "the tracking store is unreachable" not in done.stderr
        stored = subprocess.run(
            [
                sys.executable,
                "-c",
                "import mlflow; e = mlflow.get_experiment_by_name('one-bad-trace'); "
                "print(sorted(t.data.spans[0].inputs['messages'][0]['content'] for t in "
                "mlflow.search_traces(locations=[e.experiment_id], return_type='list')))",
            ],
            env={**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stored.stdout.strip() == str(sorted(f"healthy {i}" for i in range(20)))
    finally:
        proxy.kill()
        stop_mlflow_server(server)
