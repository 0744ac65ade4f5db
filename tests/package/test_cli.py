"""The ``llm-tracer`` command (tracer.cli): traces recorded through the real openai SDK against
the local server, read back by the command from the session's SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from llm_devserver import DevServer
from mlflow.entities import Trace
from openai import OpenAI
from processes import free_port
from readback import read_traces
from sdk import WEATHER_TOOL

import tracer
from tracer.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def traces(experiment: str, server: DevServer) -> list[Trace]:
    """Two traces, oldest first: a streamed chat call with tools, then an agent span with a
    chat call under it."""
    client = OpenAI(base_url=server.base_url, api_key="k", http_client=tracer.TracedClient())
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass

    @mlflow.trace(name="agent", span_type="AGENT")
    def agent(question: str) -> str | None:
        response = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return response.choices[0].message.content

    assert agent("What is the capital of France?") == "The capital of France is Paris."
    recorded = read_traces(experiment)
    assert [len(t.data.spans) for t in recorded] == [1, 2]
    return recorded


def store(experiment: str) -> list[str]:
    """The options pointing the command at this test's store and experiment."""
    return ["--tracking-uri", mlflow.get_tracking_uri(), "--experiment-id", experiment]


def test_list_prints_trees_newest_last(
    traces: list[Trace], experiment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*store(experiment), "list"]) == 0
    out = capsys.readouterr().out

    streamed, nested = (t.info.trace_id for t in traces)
    assert out.index(f"trace {streamed} ·") < out.index(f"trace {nested} ·")
    assert "chat gpt-4o-mini  CHAT_MODEL" in out
    assert "first token" in out  # the streamed call
    assert 'out: tool_calls: get_weather(city="Paris")' in out
    assert "agent  AGENT" in out
    assert "└─ chat gpt-4o-mini  CHAT_MODEL" in out  # nested under the agent span
    usage = traces[1].data.spans[1].attributes["mlflow.chat.tokenUsage"]
    tokens = f"tokens {usage['input_tokens']} in / {usage['output_tokens']} out"
    assert f"· gpt-4o-mini · {tokens}" in out
    assert "in:  What is the capital of France?" in out


def test_list_limit_and_options_after_the_command(
    traces: list[Trace], experiment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = mlflow.get_experiment(experiment).name
    uri = mlflow.get_tracking_uri()
    assert main(["list", "--limit", "1", "--tracking-uri", uri, "--experiment", name]) == 0
    out = capsys.readouterr().out
    assert traces[1].info.trace_id in out
    assert traces[0].info.trace_id not in out


def test_list_of_an_empty_experiment(experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*store(experiment), "list"]) == 0
    assert capsys.readouterr().out == f"no traces in experiment {experiment}\n"


def test_show_prints_every_span_in_full(
    traces: list[Trace], experiment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = traces[1]
    assert main([*store(experiment), "show", trace.info.trace_id]) == 0
    out = capsys.readouterr().out

    assert out.startswith(f"trace {trace.info.trace_id} ·")
    assert "└─ chat gpt-4o-mini  CHAT_MODEL" in out
    assert "span 1/2 · agent\n  type:     AGENT\n  status:   OK\n" in out
    agent, llm = trace.data.spans
    detail = out[out.index("span 2/2 · chat gpt-4o-mini") :]
    assert "  type:     CHAT_MODEL\n  status:   OK\n" in detail
    assert f"  parent:   agent ({agent.span_id})\n" in detail
    assert "  duration: " in detail

    def block(label: str, value: object) -> str:
        text = json.dumps(value, indent=2, ensure_ascii=False)
        return f"  {label}:\n" + "".join(f"    {line}\n" for line in text.splitlines())

    assert block("inputs", llm.inputs) in detail
    assert block("outputs", llm.outputs) in detail
    assert llm.outputs["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert '      "mlflow.llm.model": "gpt-4o-mini",\n' in detail  # attributes, as JSON
    assert "mlflow.spanInputs" not in out  # shown as the inputs, not repeated


def test_export_writes_json_lines(
    traces: list[Trace], experiment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*store(experiment), "export"]) == 0
    lines = capsys.readouterr().out.splitlines()

    exported = [Trace.from_json(line) for line in lines]
    assert [t.info.trace_id for t in exported] == [t.info.trace_id for t in traces]
    for back, original in zip(exported, traces, strict=True):
        assert [s.name for s in back.data.spans] == [s.name for s in original.data.spans]
        assert [s.outputs for s in back.data.spans] == [s.outputs for s in original.data.spans]


def test_export_to_a_file(
    traces: list[Trace], experiment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "traces.jsonl"
    assert main([*store(experiment), "export", "--limit", "1", "--output", str(output)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"exported 1 trace(s) to {output}\n"
    (line,) = output.read_text(encoding="utf-8").splitlines()
    assert Trace.from_json(line).info.trace_id == traces[1].info.trace_id


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("llm-tracer: error: ")
    return lines[0]


def test_unknown_trace_id(experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*store(experiment), "show", "tr-0123456789abcdef"]) == 1
    assert "no trace 'tr-0123456789abcdef'" in one_line_error(capsys)


def test_unknown_experiment(experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    uri = mlflow.get_tracking_uri()
    assert main(["--tracking-uri", uri, "--experiment", "no-such-experiment", "list"]) == 1
    assert "no experiment named 'no-such-experiment'" in one_line_error(capsys)


def test_missing_sqlite_store_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.db"
    assert main(["--tracking-uri", f"sqlite:///{path}", "list"]) == 1
    assert f"no MLflow store at {path}" in one_line_error(capsys)
    assert not path.exists()


def test_unreachable_store(
    experiment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = mlflow.get_tracking_uri()
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--tracking-uri", url, "list"]) == 1
    assert f"cannot read the MLflow store {url}" in one_line_error(capsys)
    assert main(["--tracking-uri", url, "show", "tr-0123"]) == 1
    assert f"cannot read the MLflow store {url}" in one_line_error(capsys)
    assert mlflow.get_tracking_uri() == uri  # main() put the session's store back


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["list", "--limit", "0"], ["--experiment", "a", "--experiment-id", "1", "list"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_help_through_python_m_tracer() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracer", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m tracer ")
    for command in ("list", "show", "export"):
        assert f"    {command} " in result.stdout
    assert "MLFLOW_TRACKING_URI" in result.stdout


@pytest.mark.parametrize("command", ["list", "show", "export"])
def test_help_of_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: llm-tracer {command} ")
    assert "--tracking-uri URI" in out


# --- where the local server was ------------------------------------------------------------

_WITHOUT_THE_SERVER = """
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "llm_devserver":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
try:
    import tracer.devserver
except ImportError as exc:
    print(exc)
"""


def test_tracer_devserver_still_starts_the_server_where_it_is_installed() -> None:
    import llm_devserver

    import tracer.devserver

    assert tracer.devserver.DevServer is llm_devserver.DevServer
    helped = subprocess.run(
        [sys.executable, "-m", "tracer.devserver", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: python -m tracer.devserver")


def test_tracer_devserver_says_how_to_install_the_server_where_it_is_not() -> None:
    said = subprocess.run(
        [sys.executable, "-c", _WITHOUT_THE_SERVER], capture_output=True, text=True, timeout=60
    )
    assert said.returncode == 0, said.stderr
    assert "llm-devserver" in said.stdout
    assert "pip install ./devserver" in said.stdout
