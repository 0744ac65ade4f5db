"""Run in a subprocess by test_backend_failure.py: LLM calls with and without the tracer while
the trace backend misbehaves. Prints one JSON line of what it measured.

Usage: backend_probe.py TRACKING_URI CALLS [--signal-file PATH]
With --signal-file, it writes "half" to the file once half the calls are made and their
traces written, and waits until the test has acted on the backend (the file then says "go")
before making the rest. Then it flushes, writes "flushed" and, if the test answers "back"
(the backend is back), flushes until every trace is written (at most two minutes) before it
reports. Every flush is ``export.flush(timeout=FLUSH_TIMEOUT)``, and how long each took is
reported: a flush returns within about its time-out, whatever the backend does.
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
from llm_devserver import DevServer
from openai import OpenAI

from tracer import TracedClient, export

FLUSH_TIMEOUT = 10.0


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
    logging.getLogger().addHandler(logging.StreamHandler())  # what is logged at exit too
    logging.getLogger("mlflow").addHandler(collect)  # MLflow does not propagate to the root
    mlflow.set_tracking_uri(uri)
    flush_s: dict[str, list[float]] = {"half": [], "after_fault": [], "back": []}

    def flush(when: str) -> bool:
        start = time.monotonic()
        try:
            return export.flush(timeout=FLUSH_TIMEOUT)
        finally:
            flush_s[when].append(round(time.monotonic() - start, 2))

    question = [{"role": "user", "content": "What is the capital of France?"}]
    bare_ms: list[float] = []
    traced_ms: list[float] = []
    with DevServer() as server:
        bare = OpenAI(base_url=server.base_url, api_key="k", http_client=httpx.Client())
        traced = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
        first_ms = {}
        for name, client in (("bare", bare), ("traced", traced)):  # the first call of each
            start = time.perf_counter()
            client.chat.completions.create(model="gpt-4o-mini", messages=question)
            first_ms[name] = (time.perf_counter() - start) * 1000
        for i in range(calls):
            if signal is not None and i == calls // 2:
                # The first half is stored before the fault. A fresh server can take longer
                # than a short MLflow request time-out to answer its first writes; the export
                # process tries them again.
                deadline = time.monotonic() + 120
                while not flush("half") and time.monotonic() < deadline:
                    time.sleep(0.5)
                signal.write_text("half")
                while signal.read_text() != "go":
                    time.sleep(0.05)
            for client, sink in ((bare, bare_ms), (traced, traced_ms)):
                start = time.perf_counter()
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=question)
                sink.append((time.perf_counter() - start) * 1000)
                assert reply.choices[0].message.content == "The capital of France is Paris."
    flushed = flush("after_fault")  # the writes fail, or wait for the backend, now
    written_after_restart = None
    if signal is not None:
        signal.write_text("flushed")
        deadline = time.monotonic() + 120
        while signal.read_text() not in ("back", "done") and time.monotonic() < deadline:
            time.sleep(0.05)
        if signal.read_text() == "back":
            written_after_restart = False
            while time.monotonic() < deadline and not written_after_restart:
                written_after_restart = flush("back")
    print(
        json.dumps(
            {
                "bare_ms": statistics.median(bare_ms),
                "traced_ms": statistics.median(traced_ms),
                "calls": len(traced_ms),
                "first_bare_ms": first_ms["bare"],
                "first_traced_ms": first_ms["traced"],
                "flushed": flushed,
                "written_after_restart": written_after_restart,
                "stats": export.export_process().stats(),
                "flush_timeout": FLUSH_TIMEOUT,
                "flush_s": flush_s,
                "warnings": collect.records,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
