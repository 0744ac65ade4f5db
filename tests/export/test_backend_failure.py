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
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from processes import free_port, running, slow_export_start, start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.e2e  # make compat runs it (pyproject.toml: markers)

PROBE = Path(__file__).with_name("backend_probe.py")
CALLS = 40
ENV = {**os.environ, "TRACER_STRICT": "0", "PYTHONFAULTHANDLER": "1"}
NO_CATALOG = {"MLFLOW_MODEL_CATALOG_URI": ""}  # no model catalog to wait for


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


def read_span_names(url: str, experiment: str | None = None) -> list[str]:
    """Every span name stored by the server (in the default experiment, or the one named),
    read back through its API in a fresh process (MLflow's artifact proxy wants the tracking
    URI from the environment)."""
    where = (
        "'0'"
        if experiment is None
        else f"mlflow.get_experiment_by_name({experiment!r}).experiment_id"
    )
    code = (
        "import json, mlflow; "
        f"traces = mlflow.search_traces(locations=[{where}], max_results=500, return_type='list'); "
        "print(json.dumps([s.name for t in traces for s in t.data.spans]))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_app(program: str, url: str) -> subprocess.CompletedProcess[str]:
    """Run ``program`` in a fresh process tracing to ``url`` (MLflow's settings of this
    process left out); it must succeed."""
    env = {k: v for k, v in ENV.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={**env, "MLFLOW_TRACKING_URI": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


ONE_BAD_TRACE = """
import os, time, mlflow
from openai import OpenAI
from tracer import TracedClient, export
from llm_devserver import DevServer

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
    proxy, url = start_proxy(f"http://127.0.0.1:{port}", "POISON")
    try:
        done = run_app(ONE_BAD_TRACE, url)
        assert done.stdout.split() == ["False", "20", "1"], done.stderr[-3000:]
        assert "answered HTTP 500 3 times for this trace" in done.stderr
        assert "the tracking store is unreachable" not in done.stderr
        stored = run_app(
            "import mlflow; e = mlflow.get_experiment_by_name('one-bad-trace'); "
            "print(sorted(t.data.spans[0].inputs['messages'][0]['content'] for t in "
            "mlflow.search_traces(locations=[e.experiment_id], return_type='list')))",
            f"http://127.0.0.1:{port}",
        )
        assert stored.stdout.strip() == str(sorted(f"healthy {i}" for i in range(20)))
    finally:
        proxy.kill()
        stop_mlflow_server(server)


SPANS_REFUSED = """
import json, mlflow
from openai import OpenAI
from tracer import TracedClient, export
from llm_devserver import DevServer

mlflow.set_experiment("spans-refused")
with DevServer() as server:
    client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0,
                    http_client=TracedClient())
    def ask(question):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    ask("healthy first")
    export.flush(timeout=60)  # the store has taken spans: later traces' infos go first
    ask("SPANS-REFUSED")
    ask("healthy after")
    print(json.dumps(export.export_process().stats()))
    export.flush(timeout=60)
"""


def test_a_trace_whose_spans_the_store_refuses_keeps_them(tmp_path: Path) -> None:
    """A tracking server that refuses (HTTP 400) one trace's span write only, after it took
    that trace's info (written first, once the store has taken spans): the trace's spans are
    uploaded with it, as MLflow's exporter uploads the spans of a trace whose spans the
    store's tables did not take, so the trace still reads back whole; the others are
    untouched."""
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    proxy, url = start_proxy(f"http://127.0.0.1:{port}", "SPANS-REFUSED", 0, 400, "/v1/traces")
    try:
        run_app(SPANS_REFUSED, url)
        stored = run_app(
            "import json, mlflow; e = mlflow.get_experiment_by_name('spans-refused'); "
            "print(json.dumps(sorted([s.name, s.inputs['messages'][0]['content']] for t in "
            "mlflow.search_traces(locations=[e.experiment_id], return_type='list') "
            "for s in t.data.spans)))",
            f"http://127.0.0.1:{port}",
        )
    finally:
        proxy.kill()
        stop_mlflow_server(server)
    spans = json.loads(stored.stdout.strip().splitlines()[-1])
    assert spans == [
        ["chat gpt-4o-mini", "SPANS-REFUSED"],
        ["chat gpt-4o-mini", "healthy after"],
        ["chat gpt-4o-mini", "healthy first"],
    ], stored.stderr[-3000:]


DISTANT_SERVER = """
import json, os, time, mlflow
from openai import OpenAI
from tracer import TracedClient, export
from llm_devserver import DevServer

mlflow.set_experiment("distant")
with DevServer() as server:
    client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0,
                    http_client=TracedClient())
    export.flush(timeout=120)  # the export process is up: the writes below are what is timed
    start = time.monotonic()
    for i in range(30):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"far {i}"}]
        )
    ok = export.flush(timeout=120)
    took = time.monotonic() - start
    print(json.dumps({"ok": ok, "took": took, **export.export_process().stats()}))
"""


def start_proxy(
    upstream: str, marker: str, delay: float = 0.0, status: int = 500, path: str = "/"
) -> tuple[subprocess.Popen, str]:
    """``poison_proxy.py`` in front of ``upstream``; the process and its URL."""
    proxy = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("poison_proxy.py")),
            upstream,
            marker,
            str(delay),
            str(status),
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proxy, proxy.stdout.readline().strip()  # type: ignore[union-attr]


def test_a_distant_server_is_written_in_parallel(tmp_path: Path) -> None:
    """A tracking server 0.3 s away per write: the export process writes many traces at once,
    as MLflow's own exporter does with its worker threads, not one after another (30 traces
    took 9 s, and a service calling faster than 2.5 a second built a backlog until traces
    were dropped). Every trace is written, read back from the server."""
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    proxy, url = start_proxy(f"http://127.0.0.1:{port}", "NEVER-IN-A-TRACE", 0.3)
    try:
        done = run_app(DISTANT_SERVER, url)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["ok"] is True and result["written"] == 30, (result, done.stderr[-3000:])
        most = json.loads(httpx.get(f"{url}/proxy-stats").text)["most"]
        assert most >= 4, most
        names = read_span_names(f"http://127.0.0.1:{port}", "distant")
        assert sorted(names) == ["chat gpt-4o-mini"] * 30
    finally:
        proxy.kill()
        stop_mlflow_server(server)


KILLED_AFTER_HANDING_OVER = """
import json, os, signal, sys, time, mlflow
from openai import OpenAI
from tracer import TracedClient, export
from llm_devserver import DevServer

if os.environ.get("EXPERIMENT", "killed"):  # not with a server that never answers
    mlflow.set_experiment(os.environ.get("EXPERIMENT", "killed"))
with DevServer() as server:
    client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0,
                    http_client=TracedClient())
    export.flush(timeout=120)  # the export process is up
    for i in range(int(sys.argv[1])):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"last words {i}"}]
        )
    def handed_over(stats):  # every trace is in the export process's pipe
        return stats["taken"] == int(sys.argv[1]) and not stats["unsent"]

    deadline = time.monotonic() + 60
    while not handed_over(export.export_process().stats()) and time.monotonic() < deadline:
        time.sleep(0.05)  # MLflow hands finished spans over in batches, on a thread of its own
    print(json.dumps(export.export_process().stats()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def run_and_kill(url: str, calls: int, directory: Path, **env: str) -> tuple[dict, str, float]:
    """Run :data:`KILLED_AFTER_HANDING_OVER` (its export process slow to start): its
    export-process stats, everything it and its export process printed on standard error,
    and how long that process outlived it."""
    base = {k: v for k, v in ENV.items() if not k.startswith("MLFLOW_")}
    # 3 s: the traces fill its pipe before it reads them, as on a loaded machine.
    path = slow_export_start(directory, 3, base.get("PYTHONPATH"))
    app = subprocess.Popen(
        [sys.executable, "-c", KILLED_AFTER_HANDING_OVER, str(calls)],
        env={**base, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": path, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stats = json.loads(app.stdout.readline())  # type: ignore[union-attr]
    assert app.wait(timeout=60) == -signal.SIGKILL
    killed = time.monotonic()
    # The export process holds the application's standard error until it ends.
    _, err = app.communicate(timeout=FINAL_BOUND)
    return stats, err, time.monotonic() - killed


#: How long the export process may outlive a killed application: its last writes (at most
#: ``tracer._sidecar.FINAL_SECONDS``, 60 s), then the request under way, with a margin.
FINAL_BOUND = 60 + 10 + 30


def test_the_application_killed_after_handing_traces_over(tmp_path: Path) -> None:
    """The application is killed (SIGKILL) once its traces are in the export process's pipe
    (the export process still starting), the tracking server 0.5 s away per write: the
    export process writes every one of them, prints no traceback (it stopped at its first
    answer to the vanished application, with a ``BrokenPipeError`` on the terminal and a
    quarter of the traces lost), and ends."""
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    proxy, url = start_proxy(f"http://127.0.0.1:{port}", "NEVER-IN-A-TRACE", 0.5)
    try:
        stats, err, outlived = run_and_kill(url, 40, tmp_path)
        assert stats["taken"] == 40 and stats["written"] < 40, stats
        assert "Traceback" not in err and "Error" not in err, err[-3000:]
        assert not running(stats["pid"]), stats
        names = read_span_names(f"http://127.0.0.1:{port}", "killed")
        assert len(names) == 40, (len(names), stats, outlived, err[-3000:])
    finally:
        proxy.kill()
        stop_mlflow_server(server)


def test_what_cannot_be_written_after_the_application_is_gone_is_counted(
    tmp_path: Path,
) -> None:
    """The application is killed with its traces in the export process's hands and a tracking
    server that never answers: the export process tries once more, then says on standard error
    (the application's) how many traces it could not write and why, and ends within a bound."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections wait in the queue; nothing reads or answers them
    try:
        stats, err, _ = run_and_kill(
            f"http://127.0.0.1:{silent.getsockname()[1]}",
            5,
            tmp_path,
            MLFLOW_HTTP_REQUEST_TIMEOUT="2",
            MLFLOW_EXPERIMENT_ID="1",
            EXPERIMENT="",
            **NO_CATALOG,
        )
    finally:
        silent.close()
    assert "Traceback" not in err, err[-3000:]
    assert stats["written"] == 0, stats
    assert "could not write 5 trace(s) after the application ended" in err, err[-3000:]
    assert not running(stats["pid"]), stats
