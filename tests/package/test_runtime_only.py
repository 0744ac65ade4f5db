"""The production install: the project's wheel, built with ``python -m build``, in a virtual
environment of its own with only the runtime dependencies (httpx, mlflow-tracing, pydantic),
then the openai SDK and the OTLP/HTTP exporter a user adds to send spans over OpenTelemetry.

The local LLM server is not in that environment (it is a distribution of its own): it runs in
the test process, and the programs in the environment call it over loopback."""

from __future__ import annotations

import configparser
import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from llm_devserver import DevServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

pytestmark = pytest.mark.e2e  # make compat runs it (pyproject.toml: markers)

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_DEPENDENCIES = {"httpx", "mlflow-tracing", "pydantic"}
#: What a production user adds: the SDK, and the exporter for OTLP over HTTP (docs/otlp.md).
USER_PACKAGES = ("openai>=1.109,<4", "opentelemetry-exporter-otlp-proto-http>=1.30,<2")


@dataclass(frozen=True)
class RuntimeVenv:
    python: Path
    wheel: Path
    #: What the venv held with the wheel alone installed (before openai and the exporter).
    bare: dict[str, Any]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built by ``python -m build --wheel`` (isolated build environment).

    Built from a copy of the files that go into it (and of ``devserver/``, which must not), so
    the build leaves nothing in the working tree and no stale ``build/`` directory there can
    leak modules into the wheel."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for path in ROOT.iterdir():
        if path.name in ("pyproject.toml", "README.md") or path.name.startswith(
            ("LICENSE", "NOTICE")
        ):
            shutil.copy2(path, source / path.name)
    # devserver/ too: the wheel must leave it out by the project's own package list.
    for package in ("tracer", "devserver"):
        shutil.copytree(
            ROOT / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
    out = base / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


_BARE_CHECK = """
    import importlib.metadata as md, importlib.util, json, pathlib
    import tracer, tracer.cli, tracer.spans, tracer.transport

    dist = md.distribution("llm-wire-tracer")
    print(json.dumps({
        "file": tracer.__file__,
        "requires": [r for r in dist.requires or [] if "extra ==" not in r],
        "installed": sorted(d.metadata["Name"].lower() for d in md.distributions()),
        "pytest11": [f"{ep.name}={ep.value}" for ep in md.entry_points(group="pytest11")],
        "py_typed": (pathlib.Path(tracer.__file__).parent / "py.typed").is_file(),
        "devserver": importlib.util.find_spec("llm_devserver") is not None,
    }))
"""


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> RuntimeVenv:
    """A fresh virtual environment holding the wheel (with its runtime dependencies only),
    then openai and the OTLP/HTTP exporter, installed from the package index (pip's cache
    makes it quick)."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    checked = subprocess.run(
        [str(python), "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = run(python, _BARE_CHECK)
    assert result.returncode == 0, result.stderr
    bare = json.loads(result.stdout)
    installed = subprocess.run([*pip, *USER_PACKAGES], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return RuntimeVenv(python=python, wheel=wheel, bare=bare)


@pytest.fixture(scope="session")
def runtime_python(runtime_venv: RuntimeVenv) -> Path:
    return runtime_venv.python


def run(
    python: Path, code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_command([str(python), "-c", textwrap.dedent(code)], python, env)


def run_command(
    args: list[str], python: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` with a bare environment (plus ``env``) from inside the venv of ``python``."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(python.parent.parent), **(env or {})},
        cwd=python.parent,  # not the project root: import the installed package
    )


def test_the_wheel_installs_cleanly_with_only_the_runtime_dependencies(
    runtime_venv: RuntimeVenv,
) -> None:
    with zipfile.ZipFile(runtime_venv.wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert "tracer/py.typed" in names
    assert "tracer/_bootstrap/sitecustomize.py" in names  # for `llm-tracer run`
    assert {"tracer/__init__.py", "tracer/apis/chat.py", "tracer/transport.py"} <= set(names)
    assert {n.split("/")[0] for n in names} == {"tracer", info}  # no tests, examples, bench
    # Only the tracer: the local LLM server is the distribution llm-devserver. What is left of
    # it is tracer/devserver.py, a pointer that says how to install it.
    assert not [n for n in names if "_devserver" in n or "llm_devserver" in n]
    assert archive_size(runtime_venv.wheel, "tracer/devserver.py") < 2_000
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert dict(entry_points["console_scripts"]) == {"llm-tracer": "tracer.__main__:main"}
    assert dict(entry_points["pytest11"]) == {"llm_tracer": "tracer.pytest_plugin"}
    unconditional = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert {requirement_name(r) for r in unconditional} == RUNTIME_DEPENDENCIES

    # Installed alone (pip check passed in the fixture), the wheel brings only what it needs.
    bare = runtime_venv.bare
    assert "site-packages" in bare["file"]
    assert {requirement_name(r) for r in bare["requires"]} == RUNTIME_DEPENDENCIES
    assert bare["py_typed"] is True
    assert bare["devserver"] is False
    assert "llm_tracer=tracer.pytest_plugin" in bare["pytest11"]
    assert "mlflow-tracing" in bare["installed"]
    for absent in ("mlflow", "mlflow-skinny", "openai", "sqlalchemy", "flask", "pytest"):
        assert absent not in bare["installed"], absent

    script = runtime_venv.python.parent / "llm-tracer"
    assert script.is_file()
    helped = run_command([str(script), "--help"], runtime_venv.python)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: llm-tracer")


def archive_size(wheel: Path, name: str) -> int:
    with zipfile.ZipFile(wheel) as archive:
        return archive.getinfo(name).file_size


def requirement_name(requirement: str) -> str:
    """``mlflow-tracing<4,>=3.1`` -> ``mlflow-tracing``."""
    for stop in "<>=!~;[ (":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-")


def test_only_runtime_dependencies_are_installed(runtime_python: Path) -> None:
    result = run(
        runtime_python,
        """
        import importlib.util, tracer
        print(tracer.__file__)
        for name in ("sqlalchemy", "flask", "pytest", "mlflow.server"):
            try:
                found = importlib.util.find_spec(name) is not None
            except ModuleNotFoundError:
                found = False
            print(name, found)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "site-packages" in lines[0]
    assert lines[1:] == ["sqlalchemy False", "flask False", "pytest False", "mlflow.server False"]


def test_no_tracking_uri_says_what_to_set_once(runtime_python: Path, server: DevServer) -> None:
    result = run(
        runtime_python,
        f"""
        from openai import OpenAI
        from tracer import TracedClient

        client = OpenAI(base_url={server.base_url!r}, api_key="k", http_client=TracedClient())
        for _ in range(5):
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}]
            )
            assert reply.choices[0].message.content
        print("calls ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "calls ok"
    assert result.stderr.count("no MLflow tracking URI is set") == 1, result.stderr
    assert "MLFLOW_TRACKING_URI" in result.stderr
    assert "Failed to start span" not in result.stderr  # MLflow's own per-call failure


def test_seed_examples_export_to_a_real_mlflow_server(
    runtime_python: Path, mlflow_server: tuple[object, str], server: DevServer
) -> None:
    """The production install the seed documents: the lightweight package sends the traces of
    the three seed examples to an `mlflow server`; they are read back through its API."""
    _, url = mlflow_server
    env = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_EXPERIMENT_NAME": "seed-examples",
        "OPENAI_BASE_URL": server.base_url,
        "PYTHONPATH": str(ROOT / "examples"),
    }
    for example in ("basic", "streaming", "function_calling"):
        result = run(runtime_python, f"import {example}; {example}.main()", env)
        assert result.returncode == 0, result.stderr[-3000:]
    experiment_id = httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": "seed-examples"},
    ).json()["experiment"]["experiment_id"]
    spans = read_server_spans(url, experiment_id)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    assert len(by_trace) == 3
    llm = [s for s in spans if s["span_type"] == "CHAT_MODEL"]
    assert len(llm) == 4  # basic, streaming, and the agent's two calls
    for span in llm:
        assert span["name"] == "chat databricks-llama-4-maverick"
        assert span["attributes"]["mlflow.message.format"] == "openai"
        assert span["attributes"]["mlflow.llm.model"] == "databricks-llama-4-maverick"
        assert span["outputs"]["object"] == "chat.completion"
    basic = next(s for s in llm if not s["inputs"].get("stream") and "tools" not in s["inputs"])
    assert basic["attributes"]["temperature"] == 0.1
    assert basic["attributes"]["max_tokens"] == 100
    assert basic["attributes"]["mlflow.chat.tokenUsage"]["input_tokens"] > 0
    streamed = next(s for s in llm if s["inputs"].get("stream"))
    assert streamed["attributes"]["stream.completed"] is True
    assert streamed["outputs"]["choices"][0]["message"]["content"] == (
        "The capital of France is Paris."
    )
    agent = next(s for s in spans if s["span_type"] == "AGENT")
    family = by_trace[agent["trace_id"]]
    assert sorted(s["span_type"] for s in family) == [
        "AGENT",
        "CHAT_MODEL",
        "CHAT_MODEL",
        "TOOL",
        "TOOL",
    ]
    assert all(s["parent_id"] == agent["span_id"] for s in family if s is not agent)
    calls = next(
        s["outputs"]["choices"][0]["message"]["tool_calls"]
        for s in family
        if s["span_type"] == "CHAT_MODEL"
        and s["outputs"]["choices"][0]["message"].get("tool_calls")
    )
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "London"},
    ]


def test_llm_tracer_run_with_only_the_runtime_dependencies(
    runtime_python: Path, mlflow_server: tuple[object, str], server: DevServer, tmp_path: Path
) -> None:
    """The zero-code form in the production install: an application that never mentions the
    tracer, started by ``llm-tracer run``, with its default OpenAI client; the span reaches an
    `mlflow server` (the lightweight package cannot write a local store)."""
    _, url = mlflow_server
    app = tmp_path / "app.py"
    app.write_text(
        "import openai\n"
        "client = openai.OpenAI(max_retries=0)\n"
        "reply = client.chat.completions.create(\n"
        "    model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'zero code'}]\n"
        ")\n"
        "print(reply.choices[0].message.content)\n"
    )
    env = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_EXPERIMENT_NAME": "zero-code",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
    }
    llm_tracer = str(runtime_python.parent / "llm-tracer")
    result = run_command(
        [llm_tracer, "run", "--", str(runtime_python), str(app)], runtime_python, env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    experiment_id = httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": "zero-code"},
    ).json()["experiment"]["experiment_id"]
    (span,) = read_server_spans(url, experiment_id)
    assert span["span_type"] == "CHAT_MODEL"
    assert span["inputs"]["messages"] == [{"role": "user", "content": "zero code"}]
    assert span["outputs"]["choices"][0]["message"]["content"] == result.stdout.strip()


def read_server_spans(url: str, experiment_id: str) -> list[dict[str, Any]]:
    """Every span the server stored for the experiment, read back through its REST API (in a
    fresh process: MLflow's artifact proxy wants the tracking URI from the environment)."""
    code = textwrap.dedent(
        f"""
        import json, mlflow
        traces = mlflow.search_traces(
            locations=[{experiment_id!r}], max_results=100, return_type="list"
        )
        print(json.dumps([
            {{"trace_id": s.trace_id, "span_id": s.span_id, "parent_id": s.parent_id,
              "name": s.name, "span_type": s.span_type, "inputs": s.inputs,
              "outputs": s.outputs, "attributes": s.attributes,
              "status": s.status.status_code.value,
              "events": [{{"name": e.name, "attributes": e.attributes}} for e in s.events]}}
            for t in traces for s in t.data.spans
        ], default=str))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MLFLOW_TRACKING_URI": url},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    spans: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return spans


# --- OpenTelemetry (OTLP) export: docs/otlp.md ------------------------------------------------

#: What the traced program sends over OTLP: a plain call, a stream with tool calls consumed
#: after the ``@mlflow.trace`` function that created it returned, and an API error.
_OTLP_PROGRAM = """
    import json, mlflow
    from openai import BadRequestError, OpenAI
    from tracer import TracedClient

    client = OpenAI(base_url={base_url!r}, api_key="sk-otlp-secret", http_client=TracedClient())
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{{"role": "user", "content": "What is the capital of France?"}}],
        temperature=0.1,
        max_tokens=100,
    )
    WEATHER = {{"type": "function", "function": {{
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {{"type": "object", "properties": {{"city": {{"type": "string"}}}},
                        "required": ["city"]}},
    }}}}

    @mlflow.trace(span_type="AGENT")
    def plan():
        return client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{{"role": "user", "content": "What is the weather in Paris and London?"}}],
            tools=[WEATHER],
            stream=True,
            stream_options={{"include_usage": True}},
        )

    stream = plan()  # read after the parent span ended
    chunks = list(stream)
    try:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{{"role": "user", "content": "hi"}}],
            extra_headers={{"x-devserver-status": "400"}},
        )
    except BadRequestError:
        print("error raised")
    print(json.dumps({{"reply": reply.choices[0].message.content, "usage": reply.usage.to_dict()}}))
"""


def decoded(value: Any) -> Any:
    """An attribute value as MLflow wrote it (each value is JSON text on the OTel span)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def test_spans_reach_a_real_mlflow_server_over_otlp(
    runtime_python: Path, mlflow_server: tuple[object, str], server: DevServer
) -> None:
    """The lightweight install exports through OpenTelemetry's OTLP/HTTP exporter to the
    server's ``/v1/traces``; the experiment is the one the ``x-mlflow-experiment-id`` header
    names, not the one MLflow's own exporter would have used (the default experiment)."""
    _, url = mlflow_server
    created = httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "otlp"})
    experiment_id = created.json()["experiment_id"]
    assert experiment_id != "0"
    env = {
        # mlflow-tracing needs a tracking URI to start spans at all; in OTLP mode it is not
        # used for export (docs/otlp.md).
        "MLFLOW_TRACKING_URI": url,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-mlflow-experiment-id={experiment_id}",
    }
    result = run(runtime_python, _OTLP_PROGRAM.format(base_url=server.base_url), env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "error raised"
    answer = json.loads(lines[-1])
    assert answer["reply"] == "The capital of France is Paris."
    assert "Failed" not in result.stderr, result.stderr  # no export or span failure logged

    def trace_ids(experiment: str) -> list[str]:
        found = httpx.get(f"{url}/api/2.0/mlflow/traces", params={"experiment_ids": experiment})
        return [t["request_id"] for t in found.json().get("traces", [])]

    assert len(trace_ids(experiment_id)) == 3
    assert trace_ids("0") == []  # nothing went through MLflow's own exporter
    spans = read_server_spans(url, experiment_id)
    assert sorted(s["span_type"] for s in spans) == [
        "AGENT",
        "CHAT_MODEL",
        "CHAT_MODEL",
        "CHAT_MODEL",
    ]
    assert all("sk-otlp-secret" not in json.dumps(s, default=str) for s in spans)

    plain = next(s for s in spans if s["inputs"].get("temperature") == 0.1)
    attrs = plain["attributes"]
    assert plain["name"] == "chat gpt-4o-mini"
    assert plain["parent_id"] is None
    assert plain["status"] == "OK"
    assert plain["inputs"]["messages"] == [
        {"role": "user", "content": "What is the capital of France?"}
    ]
    assert plain["outputs"]["choices"][0]["message"]["content"] == answer["reply"]
    usage = answer["usage"]
    assert attrs["mlflow.chat.tokenUsage"] == {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
        "cache_read_input_tokens": 0,
    }
    assert attrs["mlflow.llm.model"] == "gpt-4o-mini"
    assert attrs["mlflow.message.format"] == "openai"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.response.id"] == plain["outputs"]["id"]
    assert attrs["http.request.method"] == "POST"
    assert attrs["url.full"] == f"{server.base_url}/chat/completions"
    assert decoded(attrs["gen_ai.request.temperature"]) == 0.1
    assert decoded(attrs["gen_ai.request.max_tokens"]) == 100
    assert decoded(attrs["gen_ai.usage.input_tokens"]) == usage["prompt_tokens"]
    assert decoded(attrs["gen_ai.usage.output_tokens"]) == usage["completion_tokens"]
    assert decoded(attrs["http.response.status_code"]) == 200
    # Known loss over OTLP into MLflow: scalar attributes come back as JSON text.
    assert attrs["gen_ai.usage.input_tokens"] == str(usage["prompt_tokens"])

    # The stream, read after its parent span ended, is still the parent's child, reassembled.
    agent = next(s for s in spans if s["span_type"] == "AGENT")
    streamed = next(s for s in spans if s["inputs"].get("stream"))
    assert streamed["trace_id"] == agent["trace_id"] and streamed["parent_id"] == agent["span_id"]
    assert decoded(streamed["attributes"]["stream.completed"]) is True
    assert decoded(streamed["attributes"]["stream.chunk_count"]) > 1
    assert decoded(streamed["attributes"]["stream.time_to_first_chunk_ms"]) > 0
    assert streamed["attributes"]["mlflow.chat.tools"][0]["function"]["name"] == "get_weather"
    calls = streamed["outputs"]["choices"][0]["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    assert streamed["attributes"]["mlflow.chat.tokenUsage"]["input_tokens"] > 0

    failed = next(s for s in spans if s["inputs"]["messages"][0]["content"] == "hi")
    assert failed["status"] == "ERROR"
    assert decoded(failed["attributes"]["http.response.status_code"]) == 400
    assert [e["name"] for e in failed["events"]] == ["exception"]
    assert "simulated by the dev server" in failed["events"][0]["attributes"]["exception.message"]

    # The lightweight install's CLI reads the OTLP-ingested traces back from the server.
    shown = run_command(
        [str(runtime_python.parent / "llm-tracer"), "--tracking-uri", url, "list"],
        runtime_python,
        {"MLFLOW_EXPERIMENT_ID": experiment_id},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("chat gpt-4o-mini  CHAT_MODEL") == 3
    assert f"tokens {usage['prompt_tokens']} in / {usage['completion_tokens']} out" in shown.stdout


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver standing in for an OpenTelemetry collector or backend."""

    received: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.received.append((self.path, headers, body))
        payload = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    received: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def otlp_value(value: AnyValue) -> tuple[str, Any]:
    """``(kind, value)`` of an OTLP attribute value, e.g. ``("int_value", 15)``."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return kind, [otlp_value(v)[1] for v in value.array_value.values]
    return str(kind), getattr(value, str(kind)) if kind else None


def collected_spans(received: list[tuple[str, dict[str, str], bytes]]) -> list[dict[str, Any]]:
    spans = []
    for path, _, body in received:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: otlp_value(a.value)[1] for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "kind": span.kind,
                            "resource": resource,
                            "attributes": {a.key: otlp_value(a.value) for a in span.attributes},
                        }
                    )
    return spans


@pytest.mark.parametrize("genai_semconv", [False, True], ids=["as-recorded", "genai-semconv"])
def test_what_an_opentelemetry_backend_receives(
    runtime_python: Path,
    server: DevServer,
    otlp_collector: tuple[str, list[tuple[str, dict[str, str], bytes]]],
    genai_semconv: bool,
) -> None:
    """Any OTLP endpoint gets the span; as recorded, every attribute value is JSON text (MLflow
    serialises them all); with MLFLOW_ENABLE_OTEL_GENAI_SEMCONV, MLflow rewrites the span into
    the OpenTelemetry GenAI conventions with typed values and drops the mlflow.* attributes."""
    endpoint, received = otlp_collector
    env = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # required, never contacted in OTLP mode
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-collector-token=abc123",
        "OTEL_SERVICE_NAME": "checkout-api",
    }
    if genai_semconv:
        env["MLFLOW_ENABLE_OTEL_GENAI_SEMCONV"] = "true"
    result = run(
        runtime_python,
        f"""
        from openai import OpenAI
        from tracer import TracedClient

        client = OpenAI(
            base_url={server.base_url!r}, api_key="sk-otlp-secret", http_client=TracedClient()
        )
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{{"role": "user", "content": "What is the capital of France?"}}],
            temperature=0.1,
        )
        """,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert received, result.stderr
    assert all(headers.get("x-collector-token") == "abc123" for _, headers, _ in received)
    assert not any(b"sk-otlp-secret" in body for _, _, body in received)
    (span,) = collected_spans(received)
    attrs = span["attributes"]
    assert span["name"] == "chat gpt-4o-mini"
    assert span["resource"]["service.name"] == "checkout-api"
    # Attributes outside the GenAI conventions stay JSON text in both modes.
    assert attrs["url.full"] == ("string_value", json.dumps(f"{server.base_url}/chat/completions"))
    assert attrs["http.response.status_code"] == ("string_value", "200")
    assert attrs["tracer.api"] == ("string_value", '"chat.completions"')
    if not genai_semconv:
        assert span["kind"] == 1  # SPAN_KIND_INTERNAL
        assert attrs["gen_ai.request.model"] == ("string_value", '"gpt-4o-mini"')
        assert attrs["gen_ai.operation.name"] == ("string_value", '"chat"')
        assert attrs["gen_ai.request.temperature"] == ("string_value", "0.1")
        assert attrs["gen_ai.usage.input_tokens"] == ("string_value", "15")
        assert attrs["gen_ai.response.finish_reasons"] == ("string_value", '["stop"]')
        assert attrs["mlflow.spanType"] == ("string_value", '"CHAT_MODEL"')
        inputs = json.loads(attrs["mlflow.spanInputs"][1])
        assert inputs["messages"][0]["content"] == "What is the capital of France?"
        usage = json.loads(attrs["mlflow.chat.tokenUsage"][1])
        assert usage["input_tokens"] == 15 and usage["total_tokens"] > 15
    else:
        assert span["kind"] == 3  # SPAN_KIND_CLIENT, as the GenAI conventions ask
        assert attrs["gen_ai.request.model"] == ("string_value", "gpt-4o-mini")
        assert attrs["gen_ai.operation.name"] == ("string_value", "chat")
        assert attrs["gen_ai.provider.name"] == ("string_value", "127.0.0.1")
        assert attrs["gen_ai.request.temperature"] == ("double_value", 0.1)
        assert attrs["gen_ai.usage.input_tokens"] == ("int_value", 15)
        assert attrs["gen_ai.response.finish_reasons"] == ("array_value", ["stop"])
        (message,) = json.loads(attrs["gen_ai.input.messages"][1])
        assert message["role"] == "user"
        assert message["parts"] == [{"type": "text", "content": "What is the capital of France?"}]
        output = json.loads(attrs["gen_ai.output.messages"][1])
        assert output[0]["parts"][0]["content"] == "The capital of France is Paris."
        assert not [key for key in attrs if key.startswith("mlflow.")]
