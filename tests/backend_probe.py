"""Run in a subprocess by test_backend_failure.py: LLM calls with and without the tracer while
the trace backend misbehaves. Prints one JSON line of what it measured.

Usage: backend_probe.py TRACKING_URI CALLS [--signal-file PATH]
With --signal-file, it writes "half" to the file after half the calls and waits until the
test has acted on the backend (the file then says "go") before making the rest.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from pathlib import Path

import httpx
import mlflow
from openai import OpenAI

from tracer import TracedClient
from tracer.devserver import DevServer


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()[:200]}")


def main() -> None:
    uri, calls = sys.argv[1], int(sys.argv[2])
    signal = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    collect = Collect()
    logging.getLogger().addHandler(collect)
    logging.getLogger("mlflow").addHandler(collect)  # MLflow does not propagate to the root
    mlflow.set_tracking_uri(uri)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    bare_ms: list[float] = []
    traced_ms: list[float] = []
    with DevServer() as server:
        bare = OpenAI(base_url=server.base_url, api_key="k", http_client=httpx.Client())
        traced = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
        for client in (bare, traced):  # warm up connections and MLflow's one-time set-up
            client.chat.completions.create(model="gpt-4o-mini", messages=question)
        for i in range(calls):
            if signal is not None and i == calls // 2:
                mlflow.flush_trace_async_logging()  # the first half is stored before the fault
                signal.write_text("half")
                while signal.read_text() != "go":
                    time.sleep(0.05)
            for client, sink in ((bare, bare_ms), (traced, traced_ms)):
                start = time.perf_counter()
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=question)
                sink.append((time.perf_counter() - start) * 1000)
                assert reply.choices[0].message.content == "The capital of France is Paris."
    mlflow.flush_trace_async_logging()  # let the background exports fail (and warn) now
    print(
        json.dumps(
            {
                "bare_ms": statistics.median(bare_ms),
                "traced_ms": statistics.median(traced_ms),
                "calls": len(traced_ms),
                "warnings": collect.records,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
