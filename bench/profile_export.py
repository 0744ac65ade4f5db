"""``make profile`` (second part): where the export process's CPU time goes, per trace.

Usage (from the project root)::

    .venv/bin/python bench/profile_export.py               # about half a minute
    .venv/bin/python bench/profile_export.py --traces 500  # more traces
    .venv/bin/python bench/profile_export.py --stream-chunks 200  # streamed calls instead

A first process makes ``--traces`` calls (and a warm-up) with the OpenAI SDK through
:class:`tracer.TracedClient` (the realistic conversation of ``make bench``, an in-process
:class:`llm_devserver.DevServer`) and keeps each line it sends its export process. A second
one replays the lines through the export process's code (``tracer/_sidecar.py``) on fresh SQLite
stores, in batches of ``MAX_BATCH`` messages, after a warm-up, and times each phase alone
(process CPU time, per trace):

- ``JSON decoding``; ``trace_of``: the trace's info unpickled, ``Span.from_dict``;
  ``size stats``: MLflow's ``add_size_stats_to_trace_metadata``;
- ``log_spans`` and ``start_trace`` (MLflow's tracing client), each order on a store of its own:
  MLflow's exporter's (spans first; ``start_trace`` then merges into the row they made) and the
  tracer's (the trace's info first, then its spans);
- ``write()``: the export process's batch write, end to end (the store known to keep spans);
  with ``JSON decoding``, what the export process spends per trace; and its wall time (with
  the commits' waits for the disk);
- ``plain sqlite3``: the rows MLflow stored, inserted again with the standard library's
  ``sqlite3`` (foreign keys unchecked), one transaction per trace: CPU and wall time.

Then the rows and bytes of values per trace (a number counts 8), and a cProfile of ``write()``
(CPU time): the MLflow and SQLAlchemy functions with the most cumulative time (the profiler
slows them down, about threefold).
"""

# ruff: noqa: E402 (the imports follow the fix of sys.path below)
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder would come first on ``sys.path``, and ``bench/profile.py`` stand
# in for the standard library's ``profile`` (which ``cProfile`` imports): the root instead.
if __package__ in (None, ""):
    sys.path[0] = str(ROOT)

import argparse
import contextlib
import cProfile
import functools
import importlib
import json
import logging
import os
import pstats
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

WARMUP = 20  # traces
#: MLflow's tables for a trace (the only ones a trace adds rows to), and their trace id column.
TABLES = {
    "trace_info": "request_id",
    "trace_tags": "request_id",
    "trace_request_metadata": "request_id",
    "spans": "trace_id",
}
WRITE = "write(): the export process's batch write"
Message = dict[str, Any]


def capture(path: Path, calls: int, chunks: int = 0) -> None:
    """Make ``calls`` traced calls (streams of ``chunks`` chunks if not 0); write each line
    sent to the export process to ``path``."""
    from llm_devserver import DevServer
    from mlflow.tracing.utils import TraceJSONEncoder
    from openai import OpenAI

    import tracer.export
    from bench.workloads import REALISTIC, reply_text
    from tracer import TracedClient
    from tracer._export_process import ExportProcess, _Flush

    quiet()
    original, out = ExportProcess._send, path.open("w")

    def send(self: ExportProcess, pipe: int, batch: list[Any], environment: Any) -> None:
        for number, item in batch:
            if not isinstance(item, _Flush):
                out.write(json.dumps(item.message(number), cls=TraceJSONEncoder) + "\n")
        original(self, pipe, batch, environment)

    ExportProcess._send = send  # type: ignore[method-assign]
    with DevServer() as server:
        http: Any = TracedClient()  # openai>=3 is typed for httpx2 clients, and takes httpx ones
        client: Any = OpenAI(base_url=server.base_url, api_key="k", http_client=http)
        reply = {"x-devserver-reply": reply_text(chunks)} if chunks else {}
        for _ in range(calls):
            answer = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=REALISTIC.messages,
                stream=bool(chunks),
                extra_headers=reply,
                **REALISTIC.params,
            )
            if chunks:
                for _chunk in answer:
                    pass
        if not tracer.export.flush(60):
            raise SystemExit("the captured traces were not all written")
    out.close()


def quiet() -> None:
    for name in ("mlflow", "alembic"):  # after ``import mlflow``, which sets their levels
        logging.getLogger(name).setLevel(logging.ERROR)


def batches(messages: list[Message], size: int) -> list[list[Message]]:
    return [messages[i : i + size] for i in range(0, len(messages), size)]


def cpu(function: Callable[[], object]) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def start_traces(client: Any, traces: list[Any]) -> None:
    for trace in traces:
        client.start_trace(trace.info)


def replay(path: Path, directory: Path) -> None:
    """Time each phase of the export process on the lines in ``path`` (the module docstring)."""
    sys.path.insert(0, str(ROOT / "tracer"))  # by path, as the export process runs it
    import mlflow

    quiet()
    sidecar: Any = importlib.import_module("_sidecar")
    template = directory / "template.db"
    mlflow.set_tracking_uri(f"sqlite:///{template}")
    mlflow.search_experiments()  # the schema made once: each fresh store is a copy

    def fresh(name: str) -> tuple[str, Any]:
        shutil.copy(template, directory / f"{name}.db")
        return f"sqlite:///{directory / name}.db", sidecar.Store()

    lines = path.read_text().splitlines()
    ends = [i for i, line in enumerate(lines) if line.startswith('{"op": "trace"')]
    warm = [json.loads(line) for line in lines[: ends[WARMUP - 1] + 1]]
    lines = lines[ends[WARMUP - 1] + 1 :]
    messages: list[Message] = []
    ms = {"JSON decoding": cpu(lambda: messages.extend(map(json.loads, lines)))}
    found = [m for m in messages if m["op"] == "trace"]
    store, traces = sidecar.Store(), list[Any]()
    ms["trace_of (info unpickled, Span.from_dict)"] = cpu(
        lambda: traces.extend(map(store.trace_of, found))
    )
    ms["size stats (MLflow's)"] = cpu(lambda: [store._size_stats(t) for t in traces])

    def orders(info_first: bool) -> list[float]:
        """CPU seconds in ``log_spans`` and in ``start_trace`` on a fresh store, in order."""
        uri, own = fresh(f"order-{info_first}")
        client, took = own.client(uri), {"log_spans": 0.0, "start_trace": 0.0}
        for timed, group in ((False, warm), (True, messages)):
            for chunk in batches(group, sidecar.MAX_BATCH):
                spans = [m for m in chunk if m["op"] == "spans"]
                built = [own._span.from_dict(s) for m in spans for s in m["spans"]]
                infos = [own.trace_of(m) for m in chunk if m["op"] == "trace"]
                for trace in infos:
                    own._size_stats(trace)
                steps = {
                    "log_spans": functools.partial(
                        client.log_spans, spans[0]["experiment_id"], built
                    ),
                    "start_trace": functools.partial(start_traces, client, infos),
                }
                for name in sorted(steps, reverse=info_first):  # start_trace first, or last
                    took[name] += cpu(steps[name]) if timed else 0.0
        return [took[name] for name in sorted(took, reverse=info_first)]

    ms["MLflow's order: log_spans"], ms["MLflow's order: start_trace"] = orders(False)
    ms["tracer's order: start_trace"], ms["tracer's order: log_spans"] = orders(True)

    def run_write(name: str, profiler: cProfile.Profile | None = None) -> tuple[float, float]:
        uri, own = fresh(name)
        for chunk in batches([{**m, "uri": uri} for m in warm], sidecar.MAX_BATCH):
            sidecar.write(own, chunk)
        assert own.keeps_spans(uri)
        spent = wall = 0.0
        for chunk in batches([{**m, "uri": uri} for m in messages], sidecar.MAX_BATCH):
            with profiler or contextlib.nullcontext():
                started, clock = time.process_time(), time.perf_counter()
                ok, failed, later, again = sidecar.write(own, chunk)
                spent += time.process_time() - started
                wall += time.perf_counter() - clock
            if failed or later or again or len(ok) != len(chunk):
                raise SystemExit(f"write() did not write everything: {failed or later or again}")
        return spent, wall

    ms[WRITE], wall = run_write("write")
    ms["JSON decoding + write(): the export process"] = ms["JSON decoding"] + ms[WRITE]
    ms["write(): wall"] = wall
    ids = [trace.info.trace_id for trace in traces]
    rows, size = plain_sqlite(directory / "write.db", directory / "plain.db", ids, ms)
    profiler = cProfile.Profile(time.process_time)  # CPU time, as above: not the fsyncs
    run_write("profiled", profiler)

    n = len(found)
    print(f"\nExport process, ms per trace ({n} traces; process CPU time, unless wall):\n")
    print("| phase | ms per trace |\n|---|---:|")
    for phase, seconds in ms.items():
        print(f"| {phase} | {seconds * 1e3 / n:.3f} |")
    counts = ", ".join(f"{table} {count / n:g}" for table, count in rows.items())
    print(f"\nRows per trace: {counts}; {size / n / 1024:.1f} KiB of values per trace")
    print(f"\ncProfile of write(), MLflow and SQLAlchemy, most cumulative time ({n} traces):\n")
    print(top_functions(profiler, n))


def plain_sqlite(
    source: Path, target: Path, ids: list[str], ms: dict[str, float]
) -> tuple[dict[str, int], int]:
    """The rows of ``ids`` in ``source`` inserted into a copy of its tables at ``target``, one
    transaction per trace (CPU and wall seconds into ``ms``): the rows per table, and bytes."""
    read = sqlite3.connect(source)
    master = read.execute("SELECT tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    schema = [statement for table, statement in master if table in TABLES]
    # Not ``*``: a generated column (``spans.duration_ns``) is not in ``table_info``.
    columns = {t: [c[1] for c in read.execute(f"PRAGMA table_info({t})")] for t in TABLES}
    journal = read.execute("PRAGMA journal_mode").fetchone()[0]
    select = {
        t: f"SELECT {', '.join(columns[t])} FROM {t} WHERE {key} = ?" for t, key in TABLES.items()
    }
    per_trace = [{t: read.execute(select[t], (i,)).fetchall() for t in TABLES} for i in ids]
    read.close()
    write = sqlite3.connect(target, isolation_level=None)
    write.execute(f"PRAGMA journal_mode = {journal}")
    for statement in sorted(schema, key=lambda s: not s.startswith("CREATE TABLE")):
        write.execute(statement)
    insert = {
        t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
        for t, c in columns.items()
    }
    wall, started = time.perf_counter(), time.process_time()
    for trace_rows in per_trace:
        write.execute("BEGIN")
        for table, table_rows in trace_rows.items():
            write.executemany(insert[table], table_rows)
        write.execute("COMMIT")
    ms["plain sqlite3: the same rows, CPU"] = time.process_time() - started
    ms["plain sqlite3: the same rows, wall"] = time.perf_counter() - wall
    write.close()
    values = [v for r in per_trace for t in r.values() for row in t for v in row]
    size = sum(len(v.encode()) if isinstance(v, str) else 8 for v in values if v is not None)
    return {t: sum(len(r[t]) for r in per_trace) for t in TABLES}, size


def top_functions(profiler: cProfile.Profile, traces: int, count: int = 12) -> str:
    """The ``count`` MLflow and SQLAlchemy functions with the most cumulative time. A function
    called as often as a caller already listed, for nearly all its time, takes its place (the
    caller counted as a wrapper)."""
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    ours = [
        (cumulative, calls, key, callers)
        for key, (_, calls, _, cumulative, callers) in stats.items()
        if "/mlflow/" in key[0] or "/sqlalchemy/" in key[0]
    ]
    rows: list[tuple[float, int, Any, int]] = []  # cumulative, calls, function, wrappers
    for cumulative, calls, key, callers in sorted(ours, key=lambda row: -row[0]):
        wrapper = [i for i, row in enumerate(rows) if row[2] in callers and row[1] == calls]
        if wrapper and cumulative > 0.95 * rows[wrapper[0]][0]:
            rows[wrapper[0]] = (cumulative, calls, key, rows[wrapper[0]][3] + 1)
        elif len(rows) < count:
            rows.append((cumulative, calls, key, 0))
    lines = ["| cumulative ms per trace | calls per trace | function |", "|---:|---:|---|"]
    for cumulative, calls, (filename, line, function), wrappers in rows:
        where = f"{filename.split('site-packages/')[-1]}:{line}"
        inside = f", inside {wrappers} wrapper(s)" if wrappers else ""
        lines.append(
            f"| {cumulative * 1e3 / traces:.3f} | {calls / traces:g} | "
            f"`{function}` ({where}{inside}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Capture the lines in one process, then replay and profile them in another."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--traces", type=int, default=200, help="traces measured")
    parser.add_argument(
        "--stream-chunks", type=int, default=0, help="streamed calls of this many chunks"
    )
    parser.add_argument("--capture", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Without MLflow's and the tracer's settings; MLflow's model catalog off (no network here:
    # MLflow would retry it for 7.6 s); MLflow's own writes synchronous in the replay.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TRACER_"))}
    env["MLFLOW_MODEL_CATALOG_URI"] = ""
    if args.capture is not None:
        capture(args.capture, args.traces, args.stream_chunks)
    elif args.replay is not None:
        replay(args.replay, args.replay.parent)
    else:
        with tempfile.TemporaryDirectory() as directory:
            lines, count = Path(directory) / "lines.jsonl", args.traces + WARMUP
            started = time.perf_counter()
            calls = ["--traces", str(count), "--capture", str(lines)]
            calls += ["--stream-chunks", str(args.stream_chunks)]
            uri = {"MLFLOW_TRACKING_URI": f"sqlite:///{directory}/capture.db"}
            subprocess.run([sys.executable, __file__, *calls], env={**env, **uri}, check=True)
            print(f"Captured {count} traces in {time.perf_counter() - started:.0f} s")
            again = [sys.executable, __file__, "--replay", str(lines)]
            sync = {"MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
            subprocess.run(again, env={**env, **sync}, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
