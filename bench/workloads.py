"""What one mode's process runs: the client of its mode, and the workloads, one round at a time.

A mode process is started by :mod:`bench.run` with its environment already set (tracking URI,
``TRACER_EXPORT``, ...). It builds its client, warms up (so MLflow's one-time set-up, the
store's schema migrations and the tracer's export process start are not measured), then answers
commands read from standard input, one JSON document per line, with one JSON line each on its
original standard output (everything else written to standard output goes to standard error).

Every figure is measured in this process: wall times with ``time.perf_counter``; CPU time with
``time.process_time`` (all threads of the process, so MLflow's background export threads count)
plus the CPU time of the process's descendants (so an export *process* counts too), read after
``mlflow.flush_trace_async_logging()`` has waited for the export of everything measured. With a
tracking server (``bench/run.py --store server``), whose pid is in ``BENCH_SERVER_PID``, the
server's CPU time (its process and its descendants) is read around the same span, flush
included, and reported on its own: the modes take turns, so what it did then was for this mode.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sqlite3
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import httpx

MODES = ("bare", "traced", "traced-noexport", "traced-chunks", "autolog")
#: Modes that are not in the default set but can be asked for with ``--modes``.
EXTRA_MODES = ("traced-mlflow",)
TRACED_MODES = ("traced", "traced-noexport", "traced-chunks", "traced-mlflow")

EXPERIMENT = "bench"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
#: The realistic workload's conversation: a system prompt, then a user's second turn.
REALISTIC_MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are a helpful travel assistant for a European rail company. Answer in a friendly "
            "tone, keep answers short, and mention connections and prices only when asked."
        ),
    },
    {
        "role": "user",
        "content": (
            "I am planning a week in France next spring with my partner. We land in Paris on a "
            "Monday morning and want to spend three days there before heading south. We both "
            "like museums, long walks and good food, but not crowded tourist traps. What should "
            "we not miss in Paris?"
        ),
    },
    {
        "role": "assistant",
        "content": (
            "Paris in spring is lovely. For museums, the Musée d'Orsay is less overwhelming than "
            "the Louvre, and the Musée Rodin has a quiet garden. For walks, follow the Canal "
            "Saint-Martin, or cross the Île de la Cité and Île Saint-Louis early in the day. "
            "For food, eat where the locals queue around the Marché d'Aligre, and book one "
            "bistro dinner in the 11th arrondissement a few days ahead."
        ),
    },
    {
        "role": "user",
        "content": (
            "That sounds perfect, thank you. After Paris we would like to go to Lyon for two "
            "days and then to Marseille. Is the train the best way to do that, and how early "
            "should we book the tickets to get reasonable prices?"
        ),
    },
]
#: The sampling parameters of every realistic call.
REALISTIC_PARAMS: dict[str, Any] = {"temperature": 0.7, "max_tokens": 400}
#: Chunks of a chat stream from the local server that carry no reply text: the first (the
#: assistant role) and the last (the finish reason).
STREAM_OVERHEAD_CHUNKS = 2
_FILLER = "Paris is the capital of France, and the Seine runs through it. "


@dataclass(frozen=True)
class Prompt:
    """What a chat call sends besides the model: its messages and its parameters."""

    messages: list[dict[str, str]]
    params: dict[str, Any] = field(default_factory=dict)


#: The existing workloads' one-line question, without parameters.
BASIC = Prompt(MESSAGES)
#: The realistic workload's conversation and parameters.
REALISTIC = Prompt(REALISTIC_MESSAGES, REALISTIC_PARAMS)


@dataclass(frozen=True)
class TrackingServer:
    """The one ``mlflow server`` of a run with ``--store server``, shared by every mode."""

    url: str
    pid: int
    db: str  #: its SQLite backend store, where the stored traces are counted


@dataclass(frozen=True)
class Sizes:
    """How much each workload does in one round."""

    calls: int = 40  #: non-streaming chat calls
    stream_calls: int = 20  #: streams of ``stream_chunks`` chunks
    stream_chunks: int = 200
    ttfc_calls: int = 20  #: streams whose time to first chunk is measured
    ttfc_chunks: int = 20
    concurrency: int = 1000  #: concurrent async streams (0: skip the workload this round)
    concurrent_chunks: int = 10
    big_chunks: int = 10_000  #: the stream read under ``tracemalloc`` (0: skip it this round)
    warmup: int = 3
    #: Realistic workload (its server in a process of its own): non-streaming calls, then
    #: streams of ``stream_chunks`` chunks, then as many of ``ttfc_chunks`` chunks (0 and 0:
    #: skip it, and its server).
    realistic_calls: int = 100
    realistic_streams: int = 30

    @property
    def realistic(self) -> bool:
        """Whether the realistic workload runs."""
        return self.realistic_calls > 0 or self.realistic_streams > 0


def mode_env(mode: str, store_dir: str, server: TrackingServer | None = None) -> dict[str, str]:
    """The environment a mode's process runs with (the caller's, adjusted): its own SQLite
    store in ``store_dir``, or with ``server`` an experiment of its own on that server."""
    env = dict(os.environ)
    for name in (
        "TRACER_EXPORT",
        "TRACER_ENABLED",
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING",
        # The experiment is set in code (``mlflow.set_experiment``, as the README does): with
        # MLFLOW_EXPERIMENT_NAME instead, MLflow looks the experiment up in the store on every
        # span it starts (see docs/performance.md).
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
    ):
        env.pop(name, None)  # each mode runs with the defaults unless it says otherwise
    if server is None:
        env["BENCH_STORE_DB"] = os.path.join(store_dir, "bench.db")
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{env['BENCH_STORE_DB']}"
        env["BENCH_EXPERIMENT"] = EXPERIMENT
    else:
        env["BENCH_STORE_DB"] = server.db
        env["MLFLOW_TRACKING_URI"] = server.url
        env["BENCH_EXPERIMENT"] = f"{EXPERIMENT}-{mode}"  # the modes' traces counted apart
        env["BENCH_SERVER_PID"] = str(server.pid)
    env["MLFLOW_MODEL_CATALOG_URI"] = ""  # no network here: don't download the price list
    env["PYTHONUNBUFFERED"] = "1"
    if mode == "traced-noexport":
        env["TRACER_EXPORT"] = "none"
    elif mode == "traced-mlflow":
        env["TRACER_EXPORT"] = "mlflow"
    elif mode == "traced-chunks":
        env["TRACER_CHUNK_EVENTS"] = "all"  # the cost of a stream's timeline, every event
    return env


def reply_text(chunks: int) -> str:
    """A reply that the local server streams in exactly ``chunks`` chunks.

    The server splits a reply into pieces of 2-4 characters, one per chunk, after a first chunk
    with the role and before a last one with the finish reason.
    """
    from llm_devserver.common import PIECE_SIZES

    pieces = max(1, chunks - STREAM_OVERHEAD_CHUNKS)
    length = sum(PIECE_SIZES[k % len(PIECE_SIZES)] for k in range(pieces))
    text = (_FILLER * (length // len(_FILLER) + 1))[:length]
    # Header values cannot end in whitespace; the length must stay as it is.
    return text[:-1] + "." if text.endswith(" ") else text


# --- CPU time ------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, float, float]]:
    """Every live process: its parent's pid, its CPU seconds so far, and those of its children
    it has waited for (Linux; else none)."""
    if not os.path.isdir("/proc"):
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / ticks,
            (int(fields[13]) + int(fields[14])) / ticks,
        )
    return table


def _descends(pid: int, root: int, table: dict[int, tuple[int, float, float]]) -> bool:
    ancestor = table[pid][0] if pid in table else 0
    while ancestor > 1 and ancestor != root:
        ancestor = table[ancestor][0] if ancestor in table else 0
    return ancestor == root


def _descendants_cpu() -> float:
    """CPU seconds used so far by the live descendants of this process (Linux; else 0)."""
    table = _processes()
    me = os.getpid()
    return sum(used for pid, (_, used, _) in table.items() if _descends(pid, me, table))


def server_cpu() -> float | None:
    """CPU seconds used so far by the tracking server of ``BENCH_SERVER_PID`` (its process and
    its descendants: the uvicorn worker, the job runner), or ``None`` without one."""
    root = int(os.environ.get("BENCH_SERVER_PID") or 0)
    if not root:
        return None
    table = _processes()
    # With the children each process has waited for, a worker that exits in between still counts.
    return sum(
        used + waited
        for pid, (_, used, waited) in table.items()
        if pid == root or _descends(pid, root, table)
    )


def _per_call(before: float | None, after: float | None, calls: int) -> float | None:
    return None if before is None or after is None else (after - before) / calls


def cpu_seconds() -> tuple[float, float]:
    """``(this process, this process + its helper processes)`` CPU seconds so far."""
    own = time.process_time()
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own, own + _descendants_cpu() + waited.ru_utime + waited.ru_stime


# --- the mode process ------------------------------------------------------------------------


class Worker:
    """One mode's clients and workloads."""

    def __init__(self, mode: str, base_url: str, realistic_url: str | None = None) -> None:
        import logging

        import mlflow

        for name in ("mlflow", "alembic", "opentelemetry"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.mode = mode
        self.base_url = base_url
        self.llm_calls = 0
        self._mlflow = mlflow
        experiment = mlflow.set_experiment(os.environ.get("BENCH_EXPERIMENT", EXPERIMENT))
        self.experiment_id: str = experiment.experiment_id
        if mode == "autolog":
            mlflow.openai.autolog()
        self.client = self._client()
        #: The same client (and HTTP client) pointed at the realistic workload's server.
        self.realistic_client: Any = None
        if realistic_url:
            self.realistic_client = self.client.with_options(base_url=realistic_url)

    def _http_options(self) -> dict[str, Any]:
        # The OpenAI SDK's own client settings, which TracedClient also defaults to, so that
        # the modes differ only in tracing (httpx's defaults allow only 100 connections).
        return {
            "timeout": httpx.Timeout(600.0, connect=5.0),
            "limits": httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            "follow_redirects": True,
        }

    def _client(self) -> Any:
        from openai import OpenAI

        if self.mode in TRACED_MODES:
            from tracer import TracedClient

            http: httpx.Client = TracedClient()
        else:
            http = httpx.Client(**self._http_options())
        self.http = http
        # openai>=3 is typed for httpx2 clients, and takes httpx ones as well.
        sdk_http: Any = http
        return OpenAI(base_url=self.base_url, api_key="bench", http_client=sdk_http, max_retries=0)

    def _async_client(self) -> Any:
        from openai import AsyncOpenAI

        if self.mode in TRACED_MODES:
            from tracer import TracedAsyncClient

            http: httpx.AsyncClient = TracedAsyncClient()
        else:
            http = httpx.AsyncClient(**self._http_options())
        sdk_http: Any = http
        return AsyncOpenAI(
            base_url=self.base_url, api_key="bench", http_client=sdk_http, max_retries=0
        )

    def flush(self) -> float:
        """Wait until every finished trace is exported; returns the seconds it took."""
        started = time.perf_counter()
        self._mlflow.flush_trace_async_logging()
        return time.perf_counter() - started

    # --- single calls ----------------------------------------------------------------------

    def chat(self, client: Any = None, prompt: Prompt = BASIC) -> float:
        """One non-streaming chat call (by default the basic one on :attr:`client`); its wall
        time."""
        client = client or self.client
        started = time.perf_counter()
        client.chat.completions.create(model=MODEL, messages=prompt.messages, **prompt.params)
        self.llm_calls += 1
        return time.perf_counter() - started

    def stream(
        self, headers: dict[str, str], client: Any = None, prompt: Prompt = BASIC
    ) -> tuple[float, float, int, int]:
        """Read one stream to its end (by default the basic one on :attr:`client`): (time to
        first chunk, wall time, chunks, text bytes)."""
        client = client or self.client
        started = time.perf_counter()
        first = 0.0
        chunks = size = 0
        with client.chat.completions.create(
            model=MODEL,
            messages=prompt.messages,
            stream=True,
            extra_headers=headers,
            **prompt.params,
        ) as stream:
            for chunk in stream:
                if chunks == 0:
                    first = time.perf_counter() - started
                chunks += 1
                if chunk.choices:
                    content = chunk.choices[0].delta.content
                    if content:
                        size += len(content.encode())
        self.llm_calls += 1
        return first, time.perf_counter() - started, chunks, size

    def warm_up(self, sizes: Sizes) -> None:
        """A few calls of each kind, then wait for their export: none of it is measured."""
        headers = {"x-devserver-reply": reply_text(sizes.ttfc_chunks)}
        for _ in range(max(1, sizes.warmup)):
            self.chat()
            self.stream(headers)
            if self.realistic_client is not None:
                self.chat(self.realistic_client, REALISTIC)
                self.stream(headers, self.realistic_client, REALISTIC)
        self.flush()

    # --- workloads -------------------------------------------------------------------------

    def non_streaming(self, calls: int) -> dict[str, Any]:
        """Workloads 1 and 6: wall time per call, and CPU time per call once exported."""
        gc.collect()
        server0 = server_cpu()
        own0, all0 = cpu_seconds()
        walls = [self.chat() for _ in range(calls)]
        drain = self.flush()
        own1, all1 = cpu_seconds()
        server1 = server_cpu()
        return {
            "wall_s": walls,
            "cpu_s_per_call": (all1 - all0) / calls,
            "cpu_in_process_s_per_call": (own1 - own0) / calls,
            "server_cpu_s_per_call": _per_call(server0, server1, calls),
            "drain_s": drain,
        }

    def streaming(self, calls: int, chunks: int) -> dict[str, Any]:
        """Workload 2: wall time of a stream of ``chunks`` chunks, read to its end."""
        headers = {"x-devserver-reply": reply_text(chunks)}
        gc.collect()
        server0 = server_cpu()
        own0, all0 = cpu_seconds()
        results = [self.stream(headers) for _ in range(calls)]
        drain = self.flush()
        own1, all1 = cpu_seconds()
        server1 = server_cpu()
        return {
            "wall_s": [wall for _, wall, _, _ in results],
            "chunks": results[-1][2],
            "cpu_s_per_call": (all1 - all0) / calls,
            "cpu_in_process_s_per_call": (own1 - own0) / calls,
            "server_cpu_s_per_call": _per_call(server0, server1, calls),
            "drain_s": drain,
        }

    def first_chunk(self, calls: int, chunks: int) -> dict[str, Any]:
        """Workload 3: time from ``create()`` to the first chunk the caller gets."""
        headers = {"x-devserver-reply": reply_text(chunks)}
        gc.collect()
        results = [self.stream(headers) for _ in range(calls)]
        return {"ttfc_s": [first for first, _, _, _ in results], "drain_s": self.flush()}

    def realistic(self, sizes: Sizes) -> dict[str, Any]:
        """Workload 7: the conversation of :data:`REALISTIC` against the server in a process of
        its own: ``realistic_calls`` non-streaming calls, ``realistic_streams`` streams of
        ``stream_chunks`` chunks, then as many of ``ttfc_chunks`` chunks, back to back with no
        flush between them (earlier calls are exported during later ones, as for a user); one
        flush at the end, then the CPU time per call of the whole batch."""
        client = self.realistic_client
        if client is None:
            raise RuntimeError("the realistic workload's server was not given (--realistic-url)")
        long_headers = {"x-devserver-reply": reply_text(sizes.stream_chunks)}
        short_headers = {"x-devserver-reply": reply_text(sizes.ttfc_chunks)}
        calls, streams = sizes.realistic_calls, sizes.realistic_streams
        gc.collect()
        server0 = server_cpu()
        own0, all0 = cpu_seconds()
        walls = [self.chat(client, REALISTIC) for _ in range(calls)]
        long = [self.stream(long_headers, client, REALISTIC) for _ in range(streams)]
        short = [self.stream(short_headers, client, REALISTIC) for _ in range(streams)]
        drain = self.flush()
        own1, all1 = cpu_seconds()
        server1 = server_cpu()
        total = calls + 2 * streams
        return {
            "calls": calls,
            "streams": streams,
            "chat_wall_s": walls,
            "stream_wall_s": [wall for _, wall, _, _ in long],
            "stream_chunks": long[-1][2] if long else None,
            "short_wall_s": [wall for _, wall, _, _ in short],
            "short_ttfc_s": [first for first, _, _, _ in short],
            "short_chunks": short[-1][2] if short else None,
            "cpu_s_per_call": (all1 - all0) / total,
            "cpu_in_process_s_per_call": (own1 - own0) / total,
            "server_cpu_s_per_call": _per_call(server0, server1, total),
            "drain_s": drain,
        }

    def concurrent(self, streams: int, chunks: int) -> dict[str, Any]:
        """Workload 4: ``streams`` async streams at once on one client (``asyncio.gather``)."""
        return asyncio.run(self._concurrent(streams, chunks))

    async def _concurrent(self, streams: int, chunks: int) -> dict[str, Any]:
        client = self._async_client()
        headers = {"x-devserver-reply": reply_text(chunks)}

        async def one() -> int:
            count = 0
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers=headers
            )
            async with stream:
                async for _ in stream:
                    count += 1
            return count

        try:
            await asyncio.gather(*(one() for _ in range(5)))  # this loop's connections
            self.flush()
            gc.collect()
            server0 = server_cpu()
            own0, all0 = cpu_seconds()
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(one() for _ in range(streams)), return_exceptions=True
            )
            window = time.perf_counter() - started
            drain = self.flush()
            own1, all1 = cpu_seconds()
            server1 = server_cpu()
        finally:
            await client.close()
        self.llm_calls += 5 + streams
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        return {
            "streams": streams,
            "window_s": window,
            "throughput": (streams - len(failures)) / window,
            "failed": len(failures),
            "first_failure": repr(failures[0]) if failures else None,
            "drain_s": drain,
            "cpu_s": all1 - all0,
            "cpu_in_process_s": own1 - own0,
            "server_cpu_s": _per_call(server0, server1, 1),
        }

    def memory(self, chunks: int) -> dict[str, Any]:
        """Workload 5: peak memory (``tracemalloc``) while one long stream is read.

        Read twice: through the SDK (every mode, autolog included), and as raw bytes through
        the mode's httpx client (not for autolog, which sees only SDK calls). Without the SDK's
        own short-lived objects in the way, the raw read's peak above bare's is the tracer's.
        Peaks are counted from before the request, but only from the moment the response head
        has arrived: sending the 30 KB ``x-devserver-reply`` header (the bench's way to steer
        the server, not part of any real call) briefly takes over a megabyte in h11, which
        would hide everything after it. ``read_peak_bytes`` covers reading the stream to its
        end (the span ends on its last event); ``total_peak_bytes`` also covers its export.
        """
        headers = {"x-devserver-reply": reply_text(chunks)}
        result: dict[str, Any] = {"output_bytes": len(headers["x-devserver-reply"].encode())}
        result["sdk"], (result["chunks"], text_bytes) = self._peak(
            lambda head_arrived: self._sdk_read(headers, head_arrived)
        )
        if text_bytes != result["output_bytes"]:
            raise RuntimeError(f"got {text_bytes} bytes of text, sent {result['output_bytes']}")
        if self.mode != "autolog":
            result["raw"], _ = self._peak(
                lambda head_arrived: self._raw_read(headers, head_arrived)
            )
        return result

    def _sdk_read(self, headers: dict[str, str], head_arrived: Callable[[], None]) -> Any:
        chunks = size = 0
        with self.client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers=headers
        ) as stream:
            head_arrived()
            for chunk in stream:
                chunks += 1
                if chunk.choices and chunk.choices[0].delta.content:
                    size += len(chunk.choices[0].delta.content.encode())
        self.llm_calls += 1
        return chunks, size

    def _raw_read(self, headers: dict[str, str], head_arrived: Callable[[], None]) -> Any:
        body = {"model": MODEL, "messages": MESSAGES, "stream": True}
        url = self.base_url.rstrip("/") + "/chat/completions"
        with self.http.stream("POST", url, json=body, headers=headers) as response:
            head_arrived()
            for _ in response.iter_raw():
                pass
        self.llm_calls += 1
        return None

    def _peak(self, read: Callable[[Callable[[], None]], Any]) -> tuple[dict[str, float], Any]:
        """Run ``read(head_arrived)`` under ``tracemalloc``; its peaks above the baseline."""
        gc.collect()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            started = time.perf_counter()
            value = read(tracemalloc.reset_peak)
            wall = time.perf_counter() - started
            read_peak = tracemalloc.get_traced_memory()[1] - baseline
            self.flush()
            total_peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        figures = {"read_peak_bytes": read_peak, "total_peak_bytes": total_peak, "wall_s": wall}
        return figures, value

    def run_round(self, sizes: Sizes) -> dict[str, Any]:
        """Every workload once, in a fixed order."""
        result: dict[str, Any] = {
            "non_streaming": self.non_streaming(sizes.calls),
            "stream": self.streaming(sizes.stream_calls, sizes.stream_chunks),
            "first_chunk": self.first_chunk(sizes.ttfc_calls, sizes.ttfc_chunks),
            "realistic": self.realistic(sizes) if sizes.realistic else None,
            "concurrent": None,
            "memory": self.memory(sizes.big_chunks) if sizes.big_chunks > 0 else None,
        }
        if sizes.concurrency > 0:
            result["concurrent"] = self.concurrent(sizes.concurrency, sizes.concurrent_chunks)
        return result

    def stats(self) -> dict[str, Any]:
        """LLM calls made so far, and traces in the store (after waiting for export)."""
        self.flush()
        return {"llm_calls": self.llm_calls, "stored_traces": stored_traces(self.experiment_id)}


def stored_traces(experiment_id: str) -> int | None:
    """Traces of the experiment in the SQLite store of ``BENCH_STORE_DB`` (this mode's own, or
    the tracking server's), or ``None`` when that cannot be read."""
    path = os.environ.get("BENCH_STORE_DB", "")
    if not path or not os.path.exists(path):
        return None
    try:
        with sqlite3.connect(path) as db:
            query = "SELECT COUNT(*) FROM trace_info WHERE experiment_id = ?"
            row = db.execute(query, (experiment_id,)).fetchone()
    except sqlite3.Error:
        return None
    return int(row[0])


def _protocol_stream() -> TextIO:
    """This process's original standard output, for replies; stray output goes to stderr."""
    sys.stdout.flush()
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return replies


def serve(mode: str, base_url: str, sizes: Sizes, realistic_url: str | None = None) -> int:
    """Run ``mode``'s process: warm up, then answer ``round`` / ``stats`` / ``exit`` commands.

    ``base_url`` is the server of the basic workloads, ``realistic_url`` (if any) the one of the
    realistic workload.
    """
    replies = _protocol_stream()

    def reply(payload: dict[str, Any]) -> None:
        replies.write(json.dumps(payload) + "\n")

    try:
        started = time.perf_counter()
        worker = Worker(mode, base_url, realistic_url)
        worker.warm_up(sizes)
        reply({"ready": True, "pid": os.getpid(), "startup_s": time.perf_counter() - started})
    except Exception:
        reply({"error": traceback.format_exc()})
        return 1
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "round":
                reply({"result": worker.run_round(Sizes(**command["sizes"]))})
            elif command["cmd"] == "stats":
                reply({"result": worker.stats()})
            else:
                worker.flush()
                reply({"result": "bye"})
                return 0
        except Exception:
            reply({"error": traceback.format_exc()})
    return 0


def sizes_dict(sizes: Sizes) -> dict[str, int]:
    """``sizes`` as a JSON-ready dict."""
    return asdict(sizes)
