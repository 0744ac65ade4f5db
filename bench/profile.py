"""``make profile``: where the tracer's time goes on the caller's thread, per workload.

Usage (from the project root)::

    .venv/bin/python bench/profile.py              # about a minute
    .venv/bin/python bench/profile.py --calls 60   # more calls per workload

The realistic workload of ``make bench`` (a four-message conversation with a system prompt,
``temperature`` and ``max_tokens``; the server in a process of its own) is run with a bare
client and a traced one, one call of each in turn. The tracer's entry points are wrapped so that
the caller's thread CPU time (``time.thread_time``) spent in each phase is counted, each phase
without the phases it calls:

- ``before the request``: routing, the time, the context (``transport._begin``);
- ``response head``: the status and the kind of body (``Recorder.on_response``);
- ``per chunk``: keeping a reference to each chunk (``Recorder.on_chunk``, parsing excluded);
- ``parsing``: decoding and parsing the chunks or the body, in batches (``Recorder._drain``,
  ``Recorder._take``), and reassembling the response (``Recorder._result``);
- ``describing the request``: the request parsed, scrubbed, its attributes built, when the call
  ends (``Recorder._describe``);
- ``MLflow span``: MLflow's span start and end (``spans.finish``, MLflow's own code);
- ``unaccounted``: the traced call's CPU time minus the bare one's and minus the phases above:
  the SDK and httpx running slower after the tracer's and MLflow's code has taken their place
  in the CPU caches, and the wrappers themselves (two clock reads each, about a microsecond:
  most of what ``per chunk`` shows).

Medians per call, in milliseconds. Then MLflow's own span start and end is timed alone, with
warm CPU caches and right after 64 MB of memory has been touched (as after a stream the SDK has
parsed), which shows why the ``MLflow span`` phase costs what it does.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(ROOT))

from bench.run import separate_devserver  # noqa: E402
from bench.workloads import REALISTIC, reply_text  # noqa: E402

PHASES = (
    "before the request",
    "response head",
    "per chunk",
    "parsing",
    "describing the request",
    "MLflow span",
)


class Phases:
    """Thread CPU time per phase, each without the phases it calls (a stack of timers)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # [start, time spent in nested phases]

    def wrap(self, owner: Any, attribute: str, phase: str) -> None:
        """Count the time spent in ``owner.attribute`` as ``phase`` (if the tracer has it:
        the script also profiles earlier versions)."""
        original = getattr(owner, attribute, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.thread_time(), 0.0]
            self._stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.thread_time() - frame[0]
                self.totals[phase] += spent - frame[1]
                if self._stack:
                    self._stack[-1][1] += spent

        setattr(owner, attribute, timed)

    def take(self) -> dict[str, float]:
        """The totals since the previous call."""
        totals, self.totals = dict(self.totals), defaultdict(float)
        return totals


def instrument() -> Phases:
    """Wrap the tracer's entry points (see the module docstring)."""
    from tracer import recorder, spans, transport

    phases = Phases()
    phases.wrap(transport, "_begin", "before the request")
    phases.wrap(recorder.Recorder, "on_response", "response head")
    phases.wrap(recorder.Recorder, "on_chunk", "per chunk")
    phases.wrap(recorder.Recorder, "_drain", "parsing")
    phases.wrap(recorder.Recorder, "_take", "parsing")
    phases.wrap(recorder.Recorder, "_result", "parsing")
    phases.wrap(recorder.Recorder, "_describe", "describing the request")
    phases.wrap(spans, "finish", "MLflow span")
    return phases


def run_workloads(base_url: str, calls: int) -> list[tuple[str, dict[str, float]]]:
    """Each workload's medians per call: bare, traced, and the traced call's phases."""
    import httpx
    import mlflow
    from openai import OpenAI

    from tracer import TracedClient

    phases = instrument()
    options: dict[str, Any] = {"base_url": base_url, "api_key": "profile", "max_retries": 0}
    # openai>=3 is typed for httpx2 clients, and takes httpx ones as well.
    bare_http: Any = httpx.Client(timeout=600.0)
    traced_http: Any = TracedClient()
    bare = OpenAI(http_client=bare_http, **options)
    traced = OpenAI(http_client=traced_http, **options)

    def chat(client: Any, _: dict[str, str]) -> None:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=REALISTIC.messages, **REALISTIC.params
        )

    def stream(client: Any, headers: dict[str, str]) -> None:
        with client.chat.completions.create(
            model="gpt-4o-mini",
            messages=REALISTIC.messages,
            stream=True,
            extra_headers=headers,
            **REALISTIC.params,
        ) as chunks:
            for _ in chunks:
                pass

    workloads: list[tuple[str, Callable[[Any, dict[str, str]], None], dict[str, str]]] = [
        ("non-streaming chat", chat, {}),
        ("200-chunk stream", stream, {"x-devserver-reply": reply_text(200)}),
        ("20-chunk stream", stream, {"x-devserver-reply": reply_text(20)}),
    ]
    results = []
    for name, call, headers in workloads:
        for client in (bare, traced, bare, traced):  # warm-up
            call(client, headers)
        mlflow.flush_trace_async_logging()
        phases.take()
        per_call: dict[str, list[float]] = defaultdict(list)
        for _ in range(calls):
            for label, client in (("bare", bare), ("traced", traced)):
                started = time.thread_time()
                call(client, headers)
                per_call[label].append(time.thread_time() - started)
                taken = phases.take()
                if label == "traced":
                    for phase in PHASES:
                        per_call[phase].append(taken.get(phase, 0.0))
                    per_call["unaccounted"].append(
                        per_call["traced"][-1] - per_call["bare"][-1] - sum(taken.values())
                    )
        mlflow.flush_trace_async_logging()
        results.append((name, {k: statistics.median(v) * 1e3 for k, v in per_call.items()}))
    return results


def mlflow_span_warm_and_cold(repeat: int = 40) -> tuple[float, float]:
    """Median milliseconds of an empty MLflow span's start and end: warm, then just after
    64 MB of memory was touched."""
    import mlflow

    memory = bytearray(64 * 1024 * 1024)

    def one(evict: bool) -> float:
        if evict:
            memory[::64] = bytes(len(memory) // 64)
        started = time.perf_counter()
        mlflow.start_span_no_context("profile", span_type="CHAT_MODEL").end()
        return time.perf_counter() - started

    for _ in range(10):
        one(False)
    warm = statistics.median(one(False) for _ in range(repeat))
    cold = statistics.median(one(True) for _ in range(repeat))
    return warm * 1e3, cold * 1e3


def table(results: list[tuple[str, dict[str, float]]]) -> str:
    """The results as a Markdown table (milliseconds per call, medians)."""
    columns = ["bare", "traced", *PHASES, "unaccounted"]
    lines = [
        "| workload | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, values in results:
        lines.append(f"| {name} | " + " | ".join(f"{values[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines)


@contextlib.contextmanager
def store() -> Iterator[None]:
    """A throw-away SQLite MLflow store and experiment; MLflow kept quiet."""
    with tempfile.TemporaryDirectory() as directory:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{directory}/profile.db"
        os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
        for name in ("mlflow", "alembic", "opentelemetry"):
            logging.getLogger(name).setLevel(logging.ERROR)
        import mlflow

        mlflow.set_experiment("profile")
        try:
            yield
        finally:
            mlflow.flush_trace_async_logging()  # before the store goes


def main(argv: list[str] | None = None) -> int:
    """Run the profile and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30, help="calls per workload and client")
    args = parser.parse_args(argv)
    with store(), separate_devserver() as base_url:
        results = run_workloads(base_url, args.calls)
        warm, cold = mlflow_span_warm_and_cold()
    print("Caller's thread CPU per call, ms (medians; phases of the traced call):\n")
    print(table(results))
    print(
        f"\nMLflow span start and end alone: {warm:.2f} ms warm, {cold:.2f} ms after 64 MB touched"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
