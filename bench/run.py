"""``make bench``: the tracer against bare calls and ``mlflow.openai.autolog()``, in one run.

Usage (from the project root)::

    .venv/bin/python bench/run.py            # the full benchmark (make bench), a few minutes
    .venv/bin/python bench/run.py --quick    # tiny sizes, about a minute (make bench-quick, CI)
    .venv/bin/python bench/run.py --store server   # one real `mlflow server` for all modes
    .venv/bin/python bench/run.py --rounds 3 --calls 20 --modes bare,traced,autolog
    .venv/bin/python bench/run.py --passthrough-only   # only the non-LLM requests, a minute

First, in this process, non-LLM requests (a GET, a POST to ``/v1/files``) through httpx, httpx2
and aiohttp clients, bare and under ``tracer.instrument()`` in turns, against a minimal server
in a process of its own (``bench/loopback.py``; see :mod:`bench.passthrough`). Then one local
OpenAI-compatible server (:class:`llm_devserver.DevServer`) runs in this process, for the
basic workloads; a second one (``python -m llm_devserver``) runs in a process of its own,
for the realistic workload (a multi-turn conversation with parameters). Each mode runs in a
process of its own (this script with ``--mode``), with its own SQLite MLflow store in a
temporary directory; with ``--store server``, all of them send their traces to one real
``mlflow server`` (SQLite backend in the temporary directory), each to an experiment of its
own, and the server's CPU time during each workload is reported in rows of its own. The modes
take turns: in each round every mode runs every workload once, the order of the modes rotating
from round to round, so that noise on the machine hits all modes alike. At the end the table of
medians and p90s, with ratios to bare and to autolog and the targets of issue 6 marked met or
not, is printed and written, with every raw figure, to ``.bench/results.json``
(``--store server``: ``.bench/results-server.json``). Nothing is asserted: the exit status is
non-zero only when the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(ROOT))

from bench import passthrough, report  # noqa: E402
from bench.workloads import (  # noqa: E402
    EXTRA_MODES,
    MODES,
    Sizes,
    TrackingServer,
    mode_env,
    serve,
    sizes_dict,
)

#: Seconds a mode process may take to answer one command before the run is abandoned.
REPLY_TIMEOUT_S = 1800.0
#: Seconds the realistic workload's server, or the tracking server, may take to start.
SERVER_START_TIMEOUT_S = 120.0
STORES = ("sqlite", "server")


@dataclass(frozen=True)
class Profile:
    """The defaults of a run: how many rounds, and in how many of them the heavy workloads run
    (the first ones: their figures vary little, and each costs a minute or more)."""

    rounds: int
    concurrent_rounds: int
    memory_rounds: int
    sizes: Sizes
    #: Non-LLM requests per variant and client (:mod:`bench.passthrough`; 0: skip them).
    passthrough: int


FULL = Profile(rounds=5, concurrent_rounds=2, memory_rounds=1, sizes=Sizes(), passthrough=4000)
QUICK = Profile(
    rounds=1,
    concurrent_rounds=1,
    memory_rounds=1,
    passthrough=30,
    sizes=Sizes(
        calls=5,
        stream_calls=3,
        ttfc_calls=5,
        concurrency=50,
        big_chunks=1000,
        warmup=1,
        realistic_calls=5,
        realistic_streams=3,
    ),
)


class BenchError(RuntimeError):
    """A mode process failed or did not answer."""


class ModeProcess:
    """One mode's process, and the line protocol to it."""

    def __init__(
        self,
        mode: str,
        base_url: str,
        store_dir: Path,
        sizes: Sizes,
        realistic_url: str | None = None,
        tracking: TrackingServer | None = None,
    ) -> None:
        self.mode = mode
        env = mode_env(mode, str(store_dir), tracking)
        env["PYTHONPATH"] = _python_path(env)
        command = [sys.executable, str(Path(__file__).resolve()), "--mode", mode]
        command += ["--url", base_url, "--sizes", json.dumps(sizes_dict(sizes))]
        if realistic_url:
            command += ["--realistic-url", realistic_url]
        self.process = subprocess.Popen(
            command,
            cwd=store_dir,  # MLflow's default artifact location (./mlruns) lands there too
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name=f"bench-{mode}").start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put("")

    def reply(self) -> Any:
        """The next reply's ``result`` (or the ready message); raises on an error reply."""
        try:
            line = self._replies.get(timeout=REPLY_TIMEOUT_S)
        except queue.Empty:
            raise BenchError(f"{self.mode}: no answer in {REPLY_TIMEOUT_S:.0f} s") from None
        if not line:
            raise BenchError(f"{self.mode}: the process exited ({self.process.wait()})")
        message = json.loads(line)
        if "error" in message:
            raise BenchError(f"{self.mode} failed:\n{message['error']}")
        return message.get("result", message)

    def send(self, command: dict[str, Any]) -> None:
        """Send ``command``; its result is the next :meth:`reply`."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def call(self, command: dict[str, Any]) -> Any:
        """Send ``command`` and wait for its result."""
        self.send(command)
        return self.reply()

    def ask_to_stop(self) -> None:
        """Ask the process to finish (it first waits for its exports)."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.send({"cmd": "exit"})

    def stop(self) -> None:
        """Wait for the process to finish; kill it if it does not within a minute."""
        self.ask_to_stop()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _python_path(env: dict[str, str]) -> str:
    """``PYTHONPATH`` of ``env`` with the project root first (``bench`` and ``tracer``)."""
    return os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))


@contextlib.contextmanager
def separate_devserver() -> Iterator[str]:
    """A ``python -m llm_devserver`` process for the realistic workload; yields its base
    URL (the first line it prints) and stops it on leaving, also on failure."""
    with _server_process("devserver", ["-m", "llm_devserver", "--port", "0"]) as base_url:
        yield base_url


@contextlib.contextmanager
def _server_process(name: str, arguments: list[str]) -> Iterator[str]:
    """``python ARGUMENTS``, a server in a process of its own; yields the URL it prints on its
    first line and stops it on leaving, also on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _python_path(env)
    process = subprocess.Popen(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(
            target=lambda: first.put(stdout.readline()), daemon=True, name=f"bench-{name}"
        ).start()
        try:
            base_url = first.get(timeout=SERVER_START_TIMEOUT_S).strip()
        except queue.Empty:
            raise BenchError(f"{name}: no URL in {SERVER_START_TIMEOUT_S:.0f} s") from None
        if not base_url.startswith("http"):
            raise BenchError(f"{name}: did not start ({process.poll()}): {base_url!r}")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def tracking_server(directory: Path) -> Iterator[TrackingServer]:
    """A real ``mlflow server`` on a free loopback port, its SQLite store and artifacts in
    ``directory`` (as ``tests/conftest.py`` starts one); yields it once it answers ``/health``,
    and kills it and its workers on leaving, also on failure."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    db = directory / "server.db"
    env = dict(os.environ)
    env["MLFLOW_MODEL_CATALOG_URI"] = ""  # as in the modes: no network for the price list
    # Its job runner's eight idle consumers poll all the time (about 20 ms of CPU a second on
    # 2 cores), which would count as the CPU time of whichever workload runs; traces need none.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with (directory / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--artifacts-destination",
                str(directory / "artifacts"),
                "--workers",
                "1",
            ],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to kill its workers with it
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise BenchError(f"mlflow server exited ({process.returncode}); see its log")
            if time.monotonic() > deadline:
                raise BenchError(f"mlflow server: not up in {SERVER_START_TIMEOUT_S:.0f} s")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield TrackingServer(url=url, pid=process.pid, db=str(db))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def run_passthrough(requests: int) -> dict[str, Any]:
    """Workload 8 (:mod:`bench.passthrough`) against ``bench/loopback.py`` in its own process."""
    block, cycles = passthrough.plan(requests)
    _progress(
        f"non-LLM requests, bare and instrumented in turns: {block * cycles} per variant and "
        f"client, in blocks of {block}"
    )
    try:
        with _server_process("loopback", [str(ROOT / "bench" / "loopback.py")]) as root:
            return passthrough.measure(root, requests, _progress)
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"non-LLM requests: {type(exc).__name__}: {exc}") from exc


def _template_store(store_root: Path) -> Path:
    """An empty MLflow SQLite store, created once and copied for every mode (the schema
    migrations take a second of CPU, which the mode processes then need not pay four times)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    path = store_root / "template.db"
    SqlAlchemyStore(f"sqlite:///{path}", str(store_root / "mlruns"))
    return path


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _round_line(mode: str, result: dict[str, Any], seconds: float) -> str:
    chat = result["non_streaming"]
    walls = sorted(chat["wall_s"])
    parts = [
        f"chat {walls[len(walls) // 2] * 1e3:.2f} ms",
        f"cpu {chat['cpu_s_per_call'] * 1e3:.1f} ms/call",
    ]
    if chat.get("server_cpu_s_per_call") is not None:
        parts.append(f"server cpu {chat['server_cpu_s_per_call'] * 1e3:.1f} ms/call")
    if result.get("realistic") and result["realistic"]["chat_wall_s"]:
        walls = sorted(result["realistic"]["chat_wall_s"])
        parts.append(f"realistic chat {walls[len(walls) // 2] * 1e3:.2f} ms")
    if result.get("concurrent"):
        parts.append(f"{result['concurrent']['throughput']:.0f} streams/s")
    return f"  {mode:<16} {', '.join(parts)}  ({seconds:.1f} s)"


def run(args: argparse.Namespace) -> int:
    """The parent: server, mode processes, rounds, report."""
    from llm_devserver import DevServer

    profile = QUICK if args.quick else FULL
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Sizes)
        if getattr(args, field.name, None) is not None
    }
    sizes = dataclasses.replace(profile.sizes, **overrides)
    rounds = args.rounds or profile.rounds
    concurrent_rounds = min(
        rounds,
        profile.concurrent_rounds if args.concurrent_rounds is None else args.concurrent_rounds,
    )
    memory_rounds = min(
        rounds, profile.memory_rounds if args.memory_rounds is None else args.memory_rounds
    )
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES + EXTRA_MODES]
    if unknown or not modes:
        raise SystemExit(f"unknown modes {unknown}; choose from {MODES + EXTRA_MODES}")
    passthrough_requests = profile.passthrough if args.passthrough is None else args.passthrough
    default_out = ".bench/results-quick.json" if args.quick else ".bench/results.json"
    if args.passthrough_only:
        default_out = default_out.replace("results", "passthrough")
    elif args.store == "server":
        default_out = default_out.replace(".json", "-server.json")
    out = Path(args.out or default_out)
    if not out.is_absolute():
        out = ROOT / out

    run_started = time.perf_counter()
    info = report.machine()
    for line in report.machine_lines(info):
        _progress(line)
    passthrough_result: dict[str, Any] | None = None
    passthrough_table: list[str] = []
    if passthrough_requests > 0 or args.passthrough_only:
        try:
            passthrough_result = run_passthrough(max(1, passthrough_requests))
        except BenchError as exc:
            _progress(f"benchmark failed: {exc}")
            return 1
        passthrough_table = report.passthrough_lines(passthrough_result)
    if args.passthrough_only:
        assert passthrough_result is not None
        print()
        print("\n".join(report.machine_lines(info)))
        print()
        print("\n".join(passthrough_table))
        document: dict[str, Any] = {
            "machine": info,
            "passthrough": passthrough_result,
            "table": passthrough_table,
        }
        _write(out, document)
        return 0
    _progress(
        f"{rounds} round(s) x modes {', '.join(modes)}; sizes: {sizes_dict(sizes)}; "
        f"concurrent streams in {concurrent_rounds} round(s), the memory stream in {memory_rounds}"
    )

    started = time.perf_counter()
    store_root = Path(tempfile.mkdtemp(prefix="tracer-bench-"))
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    schedule: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    startup: dict[str, float] = {}
    processes: dict[str, ModeProcess] = {}
    tracking_stack = contextlib.ExitStack()  # closed after the modes, which flush on exit
    store_line = "MLflow store: a SQLite file of its own for each mode process (--store sqlite)"
    try:
        with contextlib.ExitStack() as servers:
            server = servers.enter_context(DevServer())
            realistic_url: str | None = None
            if sizes.realistic:
                realistic_url = servers.enter_context(separate_devserver())
                _progress(f"realistic workload's server (own process) at {realistic_url}")
            tracking: TrackingServer | None = None
            if args.store == "server":
                tracking = tracking_stack.enter_context(tracking_server(store_root))
                _progress(f"tracking server (own process {tracking.pid}) at {tracking.url}")
                store_line = (
                    f"MLflow store: one `mlflow server` at {tracking.url} (SQLite backend, 1 "
                    "worker) for all modes, an experiment each (--store server); its CPU time is "
                    'in the "tracking server CPU" rows, not in the modes\' CPU rows'
                )
            else:
                template = _template_store(store_root)
            for mode in modes:
                store = store_root / mode
                store.mkdir()
                if tracking is None:
                    shutil.copyfile(template, store / "bench.db")
                processes[mode] = ModeProcess(
                    mode, server.base_url, store, sizes, realistic_url, tracking
                )
            for mode, process in processes.items():
                startup[mode] = process.reply()["startup_s"]
            _progress(f"mode processes ready in {time.perf_counter() - started:.1f} s")
            for index in range(rounds):
                shift = index % len(modes)
                order = modes[shift:] + modes[:shift]
                this_round = sizes
                if index >= concurrent_rounds:
                    this_round = dataclasses.replace(this_round, concurrency=0)
                if index >= memory_rounds:
                    this_round = dataclasses.replace(this_round, big_chunks=0)
                _progress(f"round {index + 1}/{rounds}: {' -> '.join(order)}")
                schedule.append({"round": index + 1, "order": order})
                for mode in order:
                    began = time.perf_counter()
                    result = processes[mode].call({"cmd": "round", "sizes": sizes_dict(this_round)})
                    result["round"] = index + 1
                    results[mode].append(result)
                    server.clear()
                    _progress(_round_line(mode, result, time.perf_counter() - began))
            for process in processes.values():
                process.send({"cmd": "stats"})
            for mode, process in processes.items():
                stats[mode] = process.reply()
    except BenchError as exc:
        _progress(f"benchmark failed: {exc}")
        return 1
    finally:
        for process in processes.values():
            process.ask_to_stop()
        for process in processes.values():
            process.stop()
        tracking_stack.close()
        if not args.keep_store:
            shutil.rmtree(store_root, ignore_errors=True)

    config = {
        **sizes_dict(sizes),
        "rounds": rounds,
        "concurrent_rounds": concurrent_rounds,
        "memory_rounds": memory_rounds,
        "modes": modes,
        "quick": args.quick,
        "passthrough": passthrough_requests,
        "store": args.store,
    }
    summary = report.summarize(results)
    lines = [store_line, "", *report.render(summary, config)]
    elapsed = time.perf_counter() - run_started  # workload 8 included
    print()
    print("\n".join(report.machine_lines(info)))
    print(
        f"{rounds} round(s); {sizes.calls} calls, {sizes.stream_calls} streams of "
        f"{sizes.stream_chunks} chunks, {sizes.ttfc_calls} first-chunk streams, "
        f"{sizes.concurrency} concurrent streams ({concurrent_rounds} round(s)), a "
        f"{sizes.big_chunks}-chunk stream ({memory_rounds} round(s)); realistic (server in its "
        f"own process): {sizes.realistic_calls} calls, {sizes.realistic_streams} streams of "
        f"{sizes.stream_chunks} and {sizes.realistic_streams} of {sizes.ttfc_chunks} chunks; "
        f"{elapsed:.0f} s in all"
    )
    print()
    print("\n".join(lines))
    if passthrough_table:
        print()
        print("\n".join(passthrough_table))
    print()
    for mode, stat in stats.items():
        if mode != "bare":
            print(
                f"{mode}: {stat['stored_traces']} traces stored for {stat['llm_calls']} LLM calls"
            )
    document = {
        "machine": info,
        "config": config,
        "elapsed_s": elapsed,
        "startup_s": startup,
        "schedule": schedule,
        "summary": summary,
        "targets": report.targets(summary),
        "stores": stats,
        "rounds": results,
        "passthrough": passthrough_result,
        "table": lines + (["", *passthrough_table] if passthrough_table else []),
    }
    _write(out, document)
    return 0


def _write(out: Path, document: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"\nfigures written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; every size defaults to the full (or, with ``--quick``, tiny) run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (CI): about a minute, most of it starting MLflow",
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 5; quick 1)")
    parser.add_argument(
        "--concurrent-rounds",
        type=int,
        help="in how many rounds (the first ones) the concurrent streams run (default 2; quick 1)",
    )
    parser.add_argument(
        "--memory-rounds",
        type=int,
        help="in how many rounds (the first ones) the memory stream is read (default 1)",
    )
    parser.add_argument("--calls", type=int, help="non-streaming calls per round (40)")
    parser.add_argument("--stream-calls", type=int, help="long streams per round (20)")
    parser.add_argument("--stream-chunks", type=int, help="chunks of a long stream (200)")
    parser.add_argument("--ttfc-calls", type=int, help="first-chunk streams per round (20)")
    parser.add_argument("--ttfc-chunks", type=int, help="chunks of a first-chunk stream (20)")
    parser.add_argument("--concurrency", type=int, help="concurrent async streams (1000)")
    parser.add_argument("--concurrent-chunks", type=int, help="chunks per concurrent stream")
    parser.add_argument("--big-chunks", type=int, help="chunks of the memory stream (10000)")
    parser.add_argument("--warmup", type=int, help="warm-up calls of each kind (3)")
    parser.add_argument(
        "--realistic-calls",
        type=int,
        help="realistic non-streaming calls per round (100; 0 with --realistic-streams 0: skip)",
    )
    parser.add_argument(
        "--realistic-streams",
        type=int,
        help="realistic streams per round, of each length (--stream-chunks, --ttfc-chunks) (30)",
    )
    parser.add_argument(
        "--passthrough",
        type=int,
        help="non-LLM requests per variant and client, bare and instrumented (4000; quick 30; "
        "0: skip)",
    )
    parser.add_argument(
        "--passthrough-only",
        action="store_true",
        help="only the non-LLM requests (written to .bench/passthrough.json)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated modes (default all of {MODES}; also {EXTRA_MODES})",
    )
    parser.add_argument(
        "--store",
        choices=STORES,
        default="sqlite",
        help="sqlite: a SQLite MLflow store for each mode (default); server: one real `mlflow "
        "server` for all modes, its CPU time measured apart (.bench/results-server.json)",
    )
    parser.add_argument(
        "--out",
        help="JSON file (default .bench/results.json; --store server: .bench/results-server.json)",
    )
    parser.add_argument(
        "--keep-store", action="store_true", help="keep the temporary MLflow stores"
    )
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # internal: be a mode's process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--realistic-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, or (with ``--mode``) one mode's process."""
    args = parse_args(argv)
    if args.mode:
        return serve(args.mode, args.url, Sizes(**json.loads(args.sizes)), args.realistic_url)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
