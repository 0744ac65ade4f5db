"""A tracer never hangs its program (issue 19): streams left unfinished and collected at any
moment — inside MLflow's tracer set-up, at almost every allocation, around a tracking-URI
change — never make the program wait, and their spans are ended with what was read and
written; a stream still referenced at exit is ended and written before the exit flush.

Each program runs in a child process with a time-out and ``faulthandler`` (a hang prints every
thread's stack and fails the test instead of hanging the suite); its traces are read back from
the store after it exited, so the exit path is the one users get.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Span

pytestmark = pytest.mark.e2e  # make compat runs it (pyproject.toml: markers)

PROBE = Path(__file__).with_name("hang_probe.py")
ABANDONED = 3
REPLY = 'You asked: "Tell me something long". Here is a thoughtful answer from the local server.'


def run_probe(uri: str, *options: str) -> dict:
    # The suite's own experiment and store (in MLflow's variables) are not the probe's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    try:
        done = subprocess.run(
            [sys.executable, str(PROBE), uri, *options],
            env={**env, "TRACER_STRICT": "1", "PYTHONFAULTHANDLER": "1"},
            capture_output=True,
            timeout=240,  # the probe's own faulthandler ends it after 150 s, stacks printed
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"hung: {(exc.stderr or b'').decode()[-6000:]}") from None
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr[-6000:]
    # Strict mode: a tracer error on the reaper thread would be printed as a thread's error.
    assert "Traceback" not in stderr, stderr[-6000:]
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["reply"] == REPLY
    return result


def stored_llm_spans(*uris: str) -> list[Span]:
    """The LLM spans in the default experiment of each store, oldest first."""
    found: list[Span] = []
    previous = mlflow.get_tracking_uri()
    try:
        for uri in uris:
            mlflow.set_tracking_uri(uri)
            traces = mlflow.search_traces(locations=["0"], return_type="list")
            found += [span for trace in traces for span in trace.data.spans]
    finally:
        mlflow.set_tracking_uri(previous)
    found.sort(key=lambda span: span.start_time_ns)
    return [span for span in found if span.span_type == "CHAT_MODEL"]


def assert_left_streams(spans: list[Span], dropped: bool) -> None:
    """The left streams' spans: each ended, with what was read and no more; ``dropped``: the
    SDK's stream was collected unclosed (the async SDK's is closed by asyncio instead)."""
    assert len(spans) == ABANDONED, [s.name for s in spans]
    for span in spans:
        assert span.status.status_code == "OK"
        assert span.attributes["stream.completed"] is False
        assert span.attributes["stream.chunk_count"] >= 1
        message = span.outputs["choices"][0]["message"]  # the first chunk's, at least
        assert message["role"] == "assistant"
        assert message["content"] != REPLY
        assert span.end_time_ns >= span.start_time_ns
        if dropped:
            assert span.attributes["stream.abandoned"] is True


def split(spans: list[Span], hold: bool = False) -> tuple[list[Span], list[Span], list[Span]]:
    """The left streams' spans, the held stream's (the last stream, with ``hold``) and the
    ordinary calls'. A left stream not collected before exit is ended as open at exit too."""
    streams = [s for s in spans if s.inputs.get("stream")]
    held = streams[-1:] if hold else []
    left = streams[: len(streams) - len(held)]
    calls = [s for s in spans if not s.inputs.get("stream")]
    assert all(c.outputs["choices"][0]["message"]["content"] == REPLY for c in calls)
    return left, held, calls


def sqlite(tmp_path: Path, name: str = "mlflow") -> str:
    return f"sqlite:///{tmp_path / name}.db"


@pytest.mark.parametrize("api", ["sync", "async"])
def test_abandoned_streams_then_a_call_at_the_first_span(tmp_path: Path, api: str) -> None:
    """The program of the issue: three streams left after their first chunk, then a call; the
    streams are collected while MLflow sets its tracer up for the process's first span."""
    uri = sqlite(tmp_path)
    run_probe(uri, *(["async"] if api == "async" else []))
    left, held, calls = split(stored_llm_spans(uri))
    assert_left_streams(left, dropped=api == "sync")
    assert not held and len(calls) == 1


def test_a_collection_inside_mlflows_set_up(tmp_path: Path) -> None:
    """A full collection forced inside MLflow's tracer set-up, under its non-reentrant lock,
    frees the abandoned streams there: their finalizers must not call MLflow."""
    uri = sqlite(tmp_path)
    result = run_probe(uri, "collect-in-setup")
    assert result["freed_inside_setup"] >= 1, result  # the hostile moment did happen
    left, _, calls = split(stored_llm_spans(uri))
    assert_left_streams(left, dropped=True)
    assert len(calls) == 1


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_tracking_uri_change_while_abandoned_streams_wait(tmp_path: Path, api: str) -> None:
    """``mlflow.set_tracking_uri`` resets MLflow's tracer: the next span sets it up again,
    with the abandoned streams collected around it. Every span is in one store or the other."""
    first, second = sqlite(tmp_path, "first"), sqlite(tmp_path, "second")
    run_probe(first, "warm", f"switch={second}", *(["async"] if api == "async" else []))
    left, held, calls = split(stored_llm_spans(first, second))
    assert_left_streams(left, dropped=api == "sync")
    assert not held and len(calls) == 2  # the warm-up call and the last


def test_a_collection_at_almost_every_allocation(tmp_path: Path) -> None:
    """``gc.set_threshold(1)``: finalizers run in the middle of anything, the tracer's and
    MLflow's own code included."""
    uri = sqlite(tmp_path)
    result = run_probe(uri, "threshold1", "hold")
    assert result["inside_setup"] >= 1, result
    left, held, calls = split(stored_llm_spans(uri), hold=True)
    assert_left_streams(left, dropped=True)
    assert len(held) == 1 and len(calls) == 1


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_stream_still_referenced_at_exit_is_ended_and_written(tmp_path: Path, api: str) -> None:
    """A stream half read and still referenced (and open) when the program ends: its span is
    ended with what was read, marked, and written before the exit flush finishes. (An async
    one is closed by ``asyncio.run`` as it shuts its event loop down, which ends the span.)"""
    uri = sqlite(tmp_path)
    run_probe(uri, "warm", "hold", *(["async"] if api == "async" else []))
    left, held, calls = split(stored_llm_spans(uri), hold=True)
    assert len(left) == ABANDONED and len(calls) == 2
    (span,) = held
    assert span.attributes["stream.completed"] is False
    assert span.outputs["choices"][0]["message"]["role"] == "assistant"
    assert span.end_time_ns >= max(c.end_time_ns for c in calls)
    if api == "sync":
        assert span.attributes["stream.abandoned"] is True
        assert span.attributes["tracer.problems"] == [
            "the response was still open at exit; recorded what was read"
        ]


def test_a_collection_inside_the_connection_pool(tmp_path: Path) -> None:
    """A full collection forced inside httpcore's connection pool, under its lock: the SDK's
    stream generators freed there close their responses in a ``finally`` (a plain
    ``httpx.Client`` hangs on its own pool's lock here). The traced client's streams leave
    closing to the reaper thread."""
    uri = sqlite(tmp_path)
    result = run_probe(uri, "collect-in-pool", "warm")
    assert result["freed_inside_pool"] >= 1, result
    left, _, calls = split(stored_llm_spans(uri))
    assert_left_streams(left, dropped=True)
    assert len(calls) == 2
