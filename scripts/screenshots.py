"""Screenshots of the MLflow UI showing traces the tracer recorded: what ``make screenshots`` runs.

Starts a real ``mlflow server`` (SQLite store in a temporary directory, a free port on
127.0.0.1), runs ``examples/demo.py`` against it (the examples call the local
:class:`llm_devserver.DevServer`), makes one more call of its own (a streamed chat
completion with tools), then opens each trace in the MLflow UI with headless Chromium, driven
over the DevTools protocol (``--remote-debugging-pipe``, so nothing but the standard library),
selects the span to show and writes the PNGs to ``docs/images/``:

* ``trace-streamed-tool-calls.png``: the streamed call's span in the chat view, the tool
  calls reassembled from the stream's fragments;
* ``trace-agent.png``: the ``run_agent`` trace of ``examples/function_calling.py``, its second
  LLM span selected (the whole conversation: question, tool calls, tool results, answer).

With ``--providers``, also the span of each of ``examples/other_providers.py``'s calls, in a
taller window: ``gemini-span.png``, ``ollama-span.png`` and ``cohere-span.png``.

Chromium is installed with ``apt-get install -y chromium`` if missing (needs root and apt);
``CHROMIUM=/path/to/chrome`` picks another browser. Not part of ``make test``.

Run from the project root: ``make screenshots`` (or ``.venv/bin/python scripts/screenshots.py``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(EXAMPLES))

# MLflow prices LLM spans from a model catalog it downloads; the bundled copy is enough here.
os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")

import httpx  # noqa: E402
import mlflow  # noqa: E402
from llm_devserver import DevServer  # noqa: E402

EXPERIMENT = "tracer-demo"  # the experiment examples/demo.py records into
WIDTH, HEIGHT = 1400, 900
STREAM_QUESTION = "Is it warmer in Tokyo or in Berlin right now?"
# --providers: the root span of each examples/other_providers.py trace -> its picture
PROVIDER_SPANS = {
    "chat gemini-2.5-flash": "gemini-span.png",
    "chat llama3.2": "ollama-span.png",
    "chat command-a-03-2025": "cohere-span.png",
}
PROVIDER_QUESTION = "What is the capital of France?"
PROVIDER_HEIGHT = 1300
# localStorage entries (key_v<version>) the UI reads: keep its assistant panel closed and its
# one-time "Detect issues" hint dismissed, so they do not cover the trace.
UI_STATE = {
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.detectIssues.guidanceShown_v1": "true",
}


def log(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


# ------------------------------------------------------------------------------------------
# Chromium
# ------------------------------------------------------------------------------------------


def find_chromium() -> str:
    """The browser to use: ``$CHROMIUM``, else Chromium/Chrome on PATH, else apt-get it."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    for name in names:
        if path := shutil.which(name):
            return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(
            "Chromium not found: install it (Debian/Ubuntu: `sudo apt-get install -y chromium`) "
            "or set CHROMIUM=/path/to/chrome"
        )
    log("Chromium not found; installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    for name in names:
        if path := shutil.which(name):
            return path
    sys.exit("apt-get installed chromium, but no chromium binary is on PATH")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, binary: str, profile: Path, width: int, height: int) -> None:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def child_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._out = os.fdopen(to_browser_w, "wb", buffering=0)
        self._in = os.fdopen(from_browser_r, "rb", buffering=0)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()

        targets = self._call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self._call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self._session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self) -> None:
        buffer = b""
        while chunk := self._in.read(1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                data = json.loads(message)
                if "id" in data:
                    with self._cond:
                        self._replies[data["id"]] = data
                        self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: call_id in self._replies or self._closed, 60):
                raise TimeoutError(f"Chromium did not answer {method}")
            if call_id not in self._replies:
                raise RuntimeError(f"Chromium exited during {method}")
            reply = self._replies.pop(call_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply["result"])

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command to the page."""
        return self._call(method, session=self._session, **params)

    def js(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON) value."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", result))
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 60) -> Any:
        """Poll ``expression`` until it is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"the page never showed {what}")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} loaded")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------------------
# MLflow server and traces
# ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """A real ``mlflow server`` on loopback with a SQLite store in ``workdir``; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "server.log").open("wb"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit("mlflow server did not start:\n" + (workdir / "server.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def record_demo(url: str) -> None:
    """Run ``examples/demo.py`` with the server as its tracking URI."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "OPENAI_BASE_URL"):
        env.pop(name, None)  # always the local server: deterministic pictures
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"examples/demo.py failed:\n{result.stdout}\n{result.stderr}")


def record_streamed_tool_call(url: str) -> str:
    """Make a streamed chat completion with tools against the local server; return its trace id."""
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(EXPERIMENT)
    with DevServer() as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        from _client import make_client
        from function_calling import TOOLS

        client, model = make_client()
        started_ms = int(time.time() * 1000)
        stream = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "You are a weather assistant. Use the tools."},
                {"role": "user", "content": STREAM_QUESTION},
            ],
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-devserver-chunk-delay-ms": "15"},
        )
        for _ in stream:
            pass
        client.close()
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(
        filter_string=f"trace.timestamp_ms >= {started_ms}", return_type="list"
    )
    if len(traces) != 1:
        sys.exit(f"expected one trace of the streamed call, found {len(traces)}")
    return str(traces[0].info.trace_id)


def trace_id_by_root(experiment_id: str, name: str) -> str:
    """The demo's trace whose root span is named ``name`` (``run_agent``: function_calling.py)."""
    for trace in mlflow.search_traces(locations=[experiment_id], return_type="list"):
        if any(s.parent_id is None and s.name == name for s in trace.data.spans):
            return str(trace.info.trace_id)
    sys.exit(f"the demo recorded no {name} trace")


# ------------------------------------------------------------------------------------------
# Pictures
# ------------------------------------------------------------------------------------------


def text_check(*needles: str) -> str:
    """JavaScript: true when the page shows every needle."""
    tests = " && ".join(f"t.includes({json.dumps(n)})" for n in needles)
    text = "document.body ? document.body.innerText : ''"
    return f"(() => {{ const t = {text}; return {tests}; }})()"


def click_span(browser: Browser, prefix: str, index: int) -> None:
    """Select a span in the trace's span tree by its name (the ``index``-th one so named)."""
    clicked = browser.js(
        f"""(() => {{
        const names = [...document.querySelectorAll('span, div')].filter(
            e => e.children.length === 0 && e.textContent.startsWith({json.dumps(prefix)}));
        const el = names.at({index});
        if (!el) return false;
        el.click();
        return true;
    }})()"""
    )
    if not clicked:
        raise RuntimeError(f"no span named {prefix}... in the span tree")


def click_button(browser: Browser, label: str) -> bool:
    """Click the button with that ``aria-label``; False if there is none."""
    return bool(
        browser.js(
            f"""(() => {{
        const b = document.querySelector('button[aria-label={json.dumps(label)}]');
        if (!b) return false;
        b.click();
        return true;
    }})()"""
        )
    )


def click_tab(browser: Browser, label: str) -> bool:
    """Click the span view's tab with that text (e.g. ``Chat``); False if there is none."""
    return bool(
        browser.js(
            f"""(() => {{
        const t = [...document.querySelectorAll('[role=tab]')].find(
            e => e.textContent.trim() === {json.dumps(label)});
        if (!t) return false;
        t.click();
        return true;
    }})()"""
        )
    )


def select_chat_tab(browser: Browser) -> None:
    """The selected span's Chat tab, if the UI gives it one (MLflow 3.17's span view has none)."""
    log(f"Chat tab: {'clicked' if click_tab(browser, 'Chat') else 'none'}")


def shoot_trace(
    browser: Browser,
    url: str,
    experiment_id: str,
    trace_id: str,
    out: Path,
    select: Callable[[Browser], None],
    expect: tuple[str, ...],
) -> None:
    """Open the trace in the experiment's Traces tab, select a span, wait for it, screenshot."""
    browser.goto(f"{url}/#/experiments/{experiment_id}/traces?selectedEvaluationId={trace_id}")
    browser.wait_for(text_check("Inputs / Outputs", "Spans"), "the trace panel")
    click_button(browser, "Full screen")  # the panel over the whole page (then remembered)
    select(browser)
    browser.wait_for(text_check(*expect), f"the chat view ({', '.join(expect)})")
    time.sleep(1.5)  # let transitions and fonts settle
    browser.screenshot(out)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out  # --out may be elsewhere
    log(f"wrote {shown} ({out.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument(
        "--providers",
        action="store_true",
        help="also picture the Gemini, Ollama and Cohere spans (gemini-span.png, ...)",
    )
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("mlflow", "alembic", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)

    chromium = find_chromium()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tracer-screenshots-") as tmp:
        workdir = Path(tmp)
        with mlflow_server(workdir) as url:
            log(f"mlflow server at {url} (store in {workdir})")
            record_demo(url)
            log("recorded the demo's traces (examples/demo.py)")
            stream_trace = record_streamed_tool_call(url)
            log(f"recorded a streamed chat completion with tools: {stream_trace}")
            experiment = mlflow.get_experiment_by_name(EXPERIMENT)
            assert experiment is not None
            experiment_id = experiment.experiment_id
            agent_trace = trace_id_by_root(experiment_id, "run_agent")

            browser = Browser(chromium, workdir / "chromium-profile", WIDTH, HEIGHT)
            try:
                browser.goto(f"{url}/health")  # same origin: set the UI's stored state first
                browser.js(
                    "".join(
                        f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});"
                        for k, v in UI_STATE.items()
                    )
                    + "true"
                )
                shoot_trace(
                    browser,
                    url,
                    experiment_id,
                    stream_trace,
                    out / "trace-streamed-tool-calls.png",
                    # the trace is the one LLM span, selected when the trace opens
                    select=lambda b: None,
                    expect=(STREAM_QUESTION, "Tool calls", "Tokyo", "Berlin"),
                )
                shoot_trace(
                    browser,
                    url,
                    experiment_id,
                    agent_trace,
                    out / "trace-agent.png",
                    # the second LLM call: the whole conversation in its inputs
                    select=lambda b: click_span(b, "chat ", -1),
                    expect=("Tool calls", "The weather in London is sunny", "Based on the tools"),
                )
                if args.providers:  # taller: the whole Inputs / Outputs of each span
                    browser.send(
                        "Emulation.setDeviceMetricsOverride",
                        width=WIDTH,
                        height=PROVIDER_HEIGHT,
                        deviceScaleFactor=1,
                        mobile=False,
                    )
                for span, picture in PROVIDER_SPANS.items() if args.providers else ():
                    shoot_trace(
                        browser,
                        url,
                        experiment_id,
                        trace_id_by_root(experiment_id, span),
                        out / picture,
                        # one span per trace, selected when the trace opens
                        select=select_chat_tab,
                        expect=(PROVIDER_QUESTION, "Outputs", "Paris"),
                    )
            finally:
                browser.close()
    log(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
