"""The application's one export process (:mod:`tracer._sidecar`): its pipe, what is in
flight, its priority, forks and exit. :mod:`tracer.export` decides which writes come here."""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import multiprocessing.process as multiprocessing_process
import multiprocessing.util as multiprocessing_util
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracer.failsafe import logger, warn_once
from tracer.run import without_bootstrap

__all__ = [
    "ExportProcess",
    "Write",
    "before_close",
    "export_process",
    "started_export_process",
]

#: Writes (a trace is two: its spans and its info) held while the store is slow or unreachable;
#: beyond this, new traces are dropped and counted.
MAX_BUFFERED = 10_000
#: Writes sent to the export process together, at most.
BATCH_MAX = 256
#: The export process exits after this long without work (it costs 150-250 MB while it
#: lives, and a few seconds of CPU to start again).
IDLE_EXIT_SECONDS = 300.0
#: How long a process waits at exit, at most, for its traces to be written.
EXIT_TIMEOUT = 30.0
#: How long a flush that names no time-out waits, at most (``mlflow.flush_trace_async_logging()``
#: through the tracer's router: for the export process and MLflow's own queue together).
FLUSH_TIMEOUT = 60.0
#: The export process runs on CPU time nothing else wants (it waits for the network mostly,
#: and then the application's work comes first). When it has made no progress for this long
#: with writes waiting (a saturated host leaves it no idle CPU time), its priority rises a
#: step, to nice 10 and then to normal; it runs at normal priority at once while a flush
#: waits for it, or when a quarter of :data:`MAX_BUFFERED` waits; with nothing left to write
#: it goes back to idle. A saturated host thus slows export down but never starves it, and a
#: burst of a few seconds (a thousand concurrent streams) is written after it, not during it.
STALL_SECONDS = 5.0
#: Writes waiting beyond which the export process runs at normal priority at once.
URGENT_BACKLOG = MAX_BUFFERED // 4
_NICE = (19, 10, 0)
#: The level of normal priority (an index of :data:`_NICE`). It is also the only level used
#: when the priority could not be raised again once lowered (a user other than root, root in
#: a container without ``CAP_SYS_NICE``): at any lower level a saturated host would hold back
#: every write, and the application would wait at exit for the whole of its time-out (nice
#: 10: 30 s where normal priority takes 3 s, two busy cores).
_NORMAL = len(_NICE) - 1
_SIDECAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sidecar.py")
_BOOT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


@dataclass(eq=False)
class Write:
    """One of MLflow's write tasks, taken over; ``task`` and ``queue`` are its way back."""

    kind: str  # "spans" or "trace"
    uri: str
    workspace: str | None
    task: Any
    queue: Any
    experiment_id: str | None = None
    spans: list[Any] = field(default_factory=list)
    trace: Any = None

    def message(self, number: int) -> dict[str, Any]:
        base = {"op": self.kind, "id": number, "uri": self.uri, "workspace": self.workspace}
        if self.kind == "spans":
            return {
                **base,
                "experiment_id": self.experiment_id,
                "spans": [span.to_dict() for span in self.spans],
            }
        info = self.trace.info
        if _plain(info):
            # The trace's info as it is (the export process runs this interpreter and this
            # MLflow): a fifth of the cost of its JSON form, which goes through protobuf.
            with contextlib.suppress(Exception):
                pickled = base64.b64encode(pickle.dumps(info)).decode("ascii")
                spans = [span.to_dict() for span in self.trace.data.spans]
                return {**base, "info": pickled, "spans": spans}
        return {**base, "trace": self.trace.to_dict()}

    def fall_back(self) -> None:
        """Give the task back to MLflow's own queue."""
        self.queue.put(self.task)


def _plain(info: Any) -> bool:
    """Whether a trace's info holds only MLflow's types and plain strings, so that the export
    process can unpickle it (a tag value of the application's own ``str`` subclass could not
    be: the JSON form turns it into a string, as MLflow's own write would)."""
    if info.assessments:
        return False
    mappings = (info.tags, info.trace_metadata)
    return all(
        type(key) is str and type(value) is str
        for mapping in mappings
        for key, value in mapping.items()
    ) and all(
        value is None or type(value) is str
        for value in (info.request_preview, info.response_preview, info.client_request_id)
    )


@dataclass(eq=False)
class _Flush:
    token: int
    final: bool


class ExportProcess:
    """The application's one export process, its pipe and what is in flight.

    A writer thread sends batches (with the environment when it changed) and retires the
    process when idle; a reader thread takes the answers. Written, failed and dropped traces
    are counted; :meth:`flush` reports any that were not written.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pid = os.getpid()
        self._reset()
        multiprocessing_util.register_after_fork(self, ExportProcess._close_with_worker)
        if multiprocessing_process.parent_process() is not None:
            # Built inside a worker (the tracer first used there, as under instrument()):
            # no after-fork registration ran for it.
            ExportProcess._close_with_worker(self)

    def _mine(self) -> None:
        """In a forked child (the first time it calls in), start clean: the parent's pipes,
        threads, lock and traces stay the parent's, and the child starts its own export
        process when it first writes. Done here, not in an at-fork hook: such a hook would
        have to take the lock (or could find it held by a thread the child does not have)."""
        if self._pid != os.getpid():
            self._after_fork_in_child()

    def _reset(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._to_child = self._from_child = -1
        self._pending: deque[Write | _Flush] = deque()
        self._inflight: dict[int, Write] = {}
        self._number = 0
        self._flushed: dict[int, int] = {}
        self._written = self._failed = self._dropped = self._reported = self._taken = 0
        self._sending = 0  # writes of the batch being written to the pipe
        self._losses_taken = 0
        self._reasons: list[str] = []
        self._deaths = 0
        self._broken = False
        self._env: dict[str, str] | None = None
        self._writer: threading.Thread | None = None
        self._idle_since = time.monotonic()
        self._priority = -1
        self._reversible = _priority_reversible()
        self._progress_at = time.monotonic()
        self._flushing = 0
        self._exiting = False
        self._exit_deadline = 0.0
        self._closed = self._closing = False
        self._spawned_at = 0.0
        self._warm_uri = ""
        self._ready_after: float | None = None

    def _after_fork_in_child(self) -> None:
        # The parent's state is read without its lock (which a thread of the parent may have
        # held at the fork, and which the child never takes): at worst a pipe the parent was
        # opening at that very moment stays open in the child until it exits.
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._process is not None:
            self._process.returncode = 0  # not ours to wait for
        self._lock = threading.Condition()
        self._pid = os.getpid()
        self._reset()

    @staticmethod
    def _close_with_worker(export_process: ExportProcess) -> None:
        """In a new ``multiprocessing`` worker (run by multiprocessing as it starts it, not at
        the fork): the worker ends with ``os._exit``, after multiprocessing's own finalizers
        only, so one of those writes its last traces."""
        from multiprocessing.util import Finalize

        Finalize(None, export_process.close, exitpriority=10)

    # --- the application's side --------------------------------------------------------

    def submit(self, write: Write) -> None:
        """Queue ``write`` for the export process (never blocks on it). After :meth:`close`
        (a span ended later in the exit), MLflow's own queue writes it."""
        self._mine()
        with self._lock:
            if self._broken or self._closed:
                fall_back = True
            elif len(self._pending) + len(self._inflight) >= MAX_BUFFERED:
                fall_back = False
                if write.kind == "trace":
                    self._dropped += 1
                warn_once(
                    ("export-full",),
                    "tracer: %d writes are waiting for the trace store (slow or unreachable); "
                    "new traces are dropped until it catches up (tracer.flush() reports how "
                    "many)",
                    MAX_BUFFERED,
                )
                return
            else:
                fall_back = False
                self._pending.append(write)
                self._taken += write.kind == "trace"
                self._start_writer()
                self._lock.notify_all()
            self._adjust_priority()
        if fall_back:
            write.fall_back()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write handed over so far is done, at most ``timeout`` seconds
        (:meth:`flush_timeout` if ``None``); ``True`` if every trace was written. A store that
        is unreachable is tried once more, not waited for: its traces stay buffered (and are
        written when it is back), and this returns ``False``. The export process answers a
        flush after the request it is making, which a store that does not answer holds for
        its request time-out (see :mod:`tracer._sidecar`); past ``timeout`` this returns
        ``False`` and the flush goes on in the background."""
        self._mine()
        final = self._exiting
        if timeout is None:
            timeout = self.flush_timeout()
        deadline = time.monotonic() + timeout
        waiting = 0
        timed_out = False
        with self._lock:
            busy = self._pending or self._inflight
            retired = self._closed and self._process is None
            if self._writer is not None and not self._broken and busy and not retired:
                self._number += 1
                token = self._number
                self._pending.append(_Flush(token, final))
                self._flushing += 1
                self._adjust_priority()  # someone waits: normal priority
                self._lock.notify_all()
                try:
                    while token not in self._flushed:
                        remaining = deadline - time.monotonic()
                        if self._broken or remaining <= 0:
                            timed_out = not self._broken
                            break
                        self._lock.wait(remaining)
                finally:
                    self._flushing -= 1
                waiting = self._flushed.pop(token, 0)
            return self._report(waiting, timed_out)

    def flush_timeout(self) -> float:
        """How long a flush that names no time-out waits, at most: at exit, what is left of
        the :data:`EXIT_TIMEOUT` that :meth:`close` started, else :data:`FLUSH_TIMEOUT`."""
        if self._exiting:
            return max(0.0, self._exit_deadline - time.monotonic())
        return FLUSH_TIMEOUT

    def _report(self, waiting: int, timed_out: bool) -> bool:
        lost = self._failed + self._dropped
        if lost > self._reported:
            logger.warning(
                "tracer: %d trace(s) were not written to the tracking store (%d dropped while "
                "the store was slow or unreachable, %d failed%s)",
                lost - self._reported,
                self._dropped,
                self._failed,
                f": {self._reasons[0]}" if self._reasons else "",
            )
            self._reported = lost
            return False
        if waiting:
            warn_once(
                ("export-waiting",),
                "tracer: the tracking store is unreachable; %d trace(s) wait and will be "
                "written when it is back",
                waiting,
            )
            return False
        if timed_out:
            warn_once(("export-timeout",), "tracer: the trace store has not caught up yet")
            return False
        return True

    # --- the writer thread ----------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            self._write_batches()
        except Exception as exc:  # a tracer bug: MLflow writes from now on, nothing is lost
            warn_once(
                ("export-writer", type(exc).__name__),
                "tracer: internal error in the export writer (%s: %s); MLflow writes traces in "
                "this process from now on",
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            with self._lock:
                self._broken = True
                self._give_back()

    def _write_batches(self) -> None:
        while True:
            with self._lock:
                if self._process is None and not self._broken and self._number == 0:
                    self._spawn()  # the first start: ahead of the first write
                while not self._pending:
                    idle = time.monotonic() - self._idle_since
                    if self._process is not None and self._inflight:
                        self._lock.wait(STALL_SECONDS)  # then see whether it is starved
                        self._adjust_priority()
                    elif self._process is not None:
                        if idle >= IDLE_EXIT_SECONDS:
                            self._retire()
                            continue
                        self._lock.wait(IDLE_EXIT_SECONDS - idle)
                    else:
                        self._lock.wait()
                if self._broken:
                    self._give_back()
                    continue
                process = self._process
                if process is None and self._closed:  # retired at exit: no new one
                    self._pending.clear()
                    self._lock.notify_all()
                    continue
                if process is None:
                    process = self._spawn()
                    if process is None:
                        continue
                batch: list[tuple[int, Write | _Flush]] = []
                while self._pending and len(batch) < BATCH_MAX:
                    item = self._pending.popleft()
                    if isinstance(item, _Flush):
                        batch.append((item.token, item))
                        continue
                    self._number += 1
                    self._inflight[self._number] = item
                    batch.append((self._number, item))
                self._adjust_priority()  # before the send: a full pipe blocks it
                environment = dict(os.environ)
                send_env = environment != self._env
                self._env = environment
                pipe = self._to_child
                self._sending = len(batch)
            try:
                self._send(pipe, batch, environment if send_env else None)
            finally:
                with self._lock:
                    self._sending = 0

    def _send(
        self,
        pipe: int,
        batch: list[tuple[int, Write | _Flush]],
        environment: dict[str, str] | None,
    ) -> None:
        lines: list[str] = []
        if environment is not None:
            lines.append(json.dumps({"op": "env", "env": environment}))
        from mlflow.tracing.utils import TraceJSONEncoder

        for number, item in batch:
            if isinstance(item, _Flush):
                lines.append(json.dumps({"op": "flush", "token": number, "final": item.final}))
                continue
            try:
                lines.append(json.dumps(item.message(number), cls=TraceJSONEncoder))
            except Exception as exc:  # a trace MLflow itself could not serialise either
                self._resolve(failed=[[number, f"{type(exc).__name__}: {exc}"]])
        data = ("\n".join(lines) + "\n").encode()
        try:
            while data:
                data = data[os.write(pipe, data) :]
        except OSError:
            pass  # the process died: the reader thread sees it and sends everything again

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """Start the export process (lock held)."""
        try:
            child_stdin, to_child = os.pipe()
            from_child, child_stdout = os.pipe()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, _SIDECAR, self._warm_uri],
                    stdin=child_stdin,
                    stdout=child_stdout,
                    env={**without_bootstrap(os.environ), "PYTHONUNBUFFERED": "1"},
                    # Out of the terminal's process group: a Ctrl-C is the application's.
                    start_new_session=True,
                )
            except OSError:
                os.close(to_child)
                os.close(from_child)
                raise
            finally:
                os.close(child_stdin)
                os.close(child_stdout)
        except OSError as exc:
            warn_once(
                ("export-spawn",),
                "tracer: could not start the export process (%s); MLflow writes traces in this "
                "process",
                exc,
            )
            self._broken = True
            self._give_back()
            return None
        self._process, self._to_child, self._from_child = process, to_child, from_child
        self._env = dict(os.environ)
        self._priority = -1
        self._spawned_at, self._ready_after = time.monotonic(), None
        self._progress_at = self._spawned_at
        self._adjust_priority()  # at once: its start-up competes with nothing
        threading.Thread(
            target=self._read_loop,
            args=(process, from_child),
            name="tracer-export-read",
            daemon=True,
        ).start()
        return process

    def _retire(self) -> None:
        """End an idle export process (lock held): it sees end of input and exits. It does
        so at normal priority: at idle priority on a busy host its last answers and its exit
        could wait minutes, and it holds the application's standard error open until then
        (a parent that reads it, such as ``subprocess.run(..., capture_output=True)``,
        would wait as long)."""
        if self._process is not None and self._priority != _NORMAL:
            self._set_priority(self._process.pid, _NORMAL)
        with contextlib.suppress(OSError):
            os.close(self._to_child)
        self._process, self._to_child = None, -1
        self._idle_since = time.monotonic()

    def before_exit_flush(self) -> None:
        """At exit, once MLflow has handed over what it gathered and before the flush waits:
        see :meth:`_write_here`."""
        self._mine()
        if not self._exiting:
            return
        with self._lock:
            uris = self._uris_if_still_starting()
        if uris and all(map(_writable_here, uris)):
            self._write_here(uris)

    def _uris_if_still_starting(self) -> set[str]:
        """The stores of the writes waiting, if the export process has not started yet (a
        script shorter than its start-up, about a second and a half); else none (lock held)."""
        if self._process is None or self._ready_after is not None:
            return set()
        items = [*self._inflight.values(), *self._pending]
        return {item.uri for item in items if isinstance(item, Write)}

    def _write_here(self, uris: set[str]) -> None:
        """At exit, end the export process that is still starting and make its writes here,
        in order, with MLflow's own write tasks as MLflow's queue makes one handed to it while
        it flushes (MLflow and the store are loaded here already), rather than wait for its
        start-up. Only for SQLite and tracking servers that answer at once
        (:func:`_writable_here`); they run on a thread of their own, waited for until the exit's
        time-out at most. (A write the export process made in the moment between its start and
        this is made again: MLflow's store takes a trace again as the same.) MLflow prices the
        spans as it stores them in SQLite, with a model catalog it fetches: where that cannot
        be reached, it is pointed at the prices it would fall back to, as the export process
        does, rather than retry for seconds. Writes that come later go to MLflow's queue."""
        if any(uri.lower().startswith("sqlite") for uri in uris):
            from tracer._sidecar import catalog_unreachable

            if catalog_unreachable():
                os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""
        with self._lock:
            if self._uris_if_still_starting() != uris:
                return  # it has started meanwhile, or was given more
            process = self._process
            if process is not None:
                with contextlib.suppress(OSError):
                    process.kill()
                with contextlib.suppress(OSError):
                    os.close(self._to_child)
            self._process, self._to_child = None, -1
            self._closed = True
            items = [self._inflight[n] for n in sorted(self._inflight)] + list(self._pending)
            self._inflight.clear()
            self._pending = deque()
            for item in items:
                if isinstance(item, _Flush):
                    self._flushed[item.token] = 0
            self._lock.notify_all()
        writes = [item for item in items if isinstance(item, Write)]

        def write_all() -> None:
            for write in writes:
                write.task.handle()  # MLflow's task: it logs its own failure

        writer = threading.Thread(target=write_all, name="tracer-exit-write", daemon=True)
        writer.start()
        writer.join(max(0.0, self._exit_deadline - time.monotonic()))
        if writer.is_alive():
            warn_once(
                ("exit-write",),
                "tracer: the last traces were still being written when the %.0f s wait at "
                "exit ended; some may not be written",
                EXIT_TIMEOUT,
            )

    def _give_back(self) -> None:
        """Hand everything pending back to MLflow's queue (lock held)."""
        items, self._pending = list(self._pending), deque()
        items += list(self._inflight.values())
        self._inflight.clear()
        for item in items:
            if isinstance(item, _Flush):
                self._flushed[item.token] = 0
            else:
                item.fall_back()
        self._lock.notify_all()

    def _adjust_priority(self) -> None:
        """Set the export process's priority for the moment (lock held); see
        :data:`STALL_SECONDS`."""
        if self._process is None:
            return
        now = time.monotonic()
        level = max(self._priority, 0)
        if not self._reversible:
            level = _NORMAL
        elif not self._pending and not self._inflight:
            level = 0
        elif self._flushing or len(self._pending) + len(self._inflight) >= URGENT_BACKLOG:
            level = _NORMAL
        elif now - self._progress_at > STALL_SECONDS:
            level = min(level + 1, _NORMAL)
            self._progress_at = now  # the next step after another stalled while
        if level != self._priority:
            self._set_priority(self._process.pid, level)

    def _set_priority(self, pid: int, level: int) -> None:
        """Give the export process ``pid`` the priority of ``level`` (an index of
        :data:`_NICE`; 0 is also ``SCHED_IDLE``)."""
        self._priority = level
        # Linux schedules threads, not processes: each of the export process's threads.
        try:
            threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except (OSError, ValueError):
            threads = [pid]
        for thread in threads:
            with contextlib.suppress(AttributeError, OSError):
                policy = os.SCHED_IDLE if level == 0 else os.SCHED_OTHER  # type: ignore[attr-defined,unused-ignore]
                os.sched_setscheduler(thread, policy, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, thread, _NICE[level])

    # --- the reader thread ----------------------------------------------------------------

    def _read_loop(self, process: subprocess.Popen[bytes], fd: int) -> None:
        with open(fd, "rb", closefd=True) as answers:
            for line in answers:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if message.get("ready"):
                    with self._lock:
                        self._progress_at = time.monotonic()
                        self._ready_after = self._progress_at - self._spawned_at
                self._resolve(
                    ok=message.get("ok", ()),
                    failed=message.get("failed", ()),
                    flushed=message.get("flushed"),
                    waiting=message.get("waiting", 0),
                )
        process.wait()
        with self._lock:
            if self._process is not process:
                return  # retired, or replaced after a fork
            self._process, self._to_child = None, -1
            self._deaths += 1
            # What it had not answered is sent again, in order, to the next one.
            for number in sorted(self._inflight, reverse=True):
                self._pending.appendleft(self._inflight.pop(number))
            if self._deaths >= 3:
                warn_once(
                    ("export-died",),
                    "tracer: the export process stopped %d times; MLflow writes traces in this "
                    "process from now on",
                    self._deaths,
                )
                self._broken = True
                self._give_back()
            else:
                warn_once(
                    ("export-restart",),
                    "tracer: the export process stopped (exit status %s); starting a new one",
                    process.returncode,
                )
            self._lock.notify_all()

    def _resolve(
        self,
        ok: Any = (),
        failed: Any = (),
        flushed: int | None = None,
        waiting: int = 0,
    ) -> None:
        with self._lock:
            for number in ok:
                write = self._inflight.pop(number, None)
                if write is not None and write.kind == "trace":
                    self._written += 1
            for number, reason in failed:
                write = self._inflight.pop(number, None)
                if write is not None and write.kind == "trace":
                    self._failed += 1
                    if len(self._reasons) < 3:
                        self._reasons.append(reason)
            if ok or failed:
                self._deaths = 0
                self._idle_since = self._progress_at = time.monotonic()
                if not self._pending and not self._inflight:
                    self._adjust_priority()  # all done: back to idle
            if flushed is not None:
                self._flushed[flushed] = waiting
            self._lock.notify_all()

    def start(self, uri: str) -> None:
        """Start the export process now (in the background), connected to ``uri``, so that
        its start-up overlaps the application's work instead of delaying the first write."""
        self._mine()
        with self._lock:
            self._warm_uri = uri
            self._start_writer()
            self._lock.notify_all()

    def _start_writer(self) -> None:
        if self._writer is None and not self._broken:
            self._writer = threading.Thread(
                target=self._write_loop, name="tracer-export", daemon=True
            )
            self._writer.start()

    def take_losses(self) -> int:
        """Traces lost (failed or dropped) since the previous call."""
        self._mine()
        with self._lock:
            lost = self._failed + self._dropped
            new, self._losses_taken = lost - self._losses_taken, lost
            return new

    def stats(self) -> dict[str, int]:
        """Traces taken, written, failed and dropped so far, writes in flight and those of them
        not yet all in the export process's pipe (for tests and diagnostics)."""
        self._mine()
        with self._lock:
            return {
                "taken": self._taken,
                "written": self._written,
                "failed": self._failed,
                "dropped": self._dropped,
                "in_flight": len(self._pending) + len(self._inflight),
                "unsent": len(self._pending) + self._sending,
                "pid": self._process.pid if self._process is not None else 0,
                "ready_after_ms": round(self._ready_after * 1000)
                if self._ready_after is not None
                else -1,
            }

    def close(self) -> None:
        """At exit: the spans of open and abandoned streams end (:func:`before_close`),
        everything MLflow still holds is exported and written, then the export process ends
        (it exits when its input closes); all of it within :data:`EXIT_TIMEOUT`. Writes that
        come later go to MLflow's queue. When the export process has not started yet, the
        writes are made here where that needs no wait on a network (:meth:`_write_here`)."""
        self._mine()
        with self._lock:
            if self._closing:  # both exit hooks call this (the reaper's and its own)
                return
            self._closing = True
        self._exit_deadline = time.monotonic() + EXIT_TIMEOUT
        self._exiting = True
        for callback in _before_close:
            with contextlib.suppress(Exception):
                callback()
        with contextlib.suppress(Exception):
            import mlflow

            mlflow.flush_trace_async_logging()  # hands over what MLflow still gathers
        if self._writer is not None:
            self.before_exit_flush()
            self.flush()
        with self._lock:
            self._closed = True
            unsent = [w for w in self._pending if isinstance(w, Write) and w.kind == "trace"]
            if unsent:  # the exit's wait ended before they reached the export process
                self._dropped += len(unsent)
                logger.warning(
                    "tracer: %d trace(s) were not written: the export process had not taken "
                    "them when the %.0f s wait at exit ended",
                    len(unsent),
                    EXIT_TIMEOUT,
                )
            self._pending.clear()
            if self._process is not None:
                # It exits on its own once it has written what it holds (at most
                # tracer._sidecar.FINAL_SECONDS), and reports on standard error what it
                # could not write.
                self._retire()


def _writable_here(uri: str) -> bool:
    """Whether the application can make its last writes to ``uri`` itself at exit without
    waiting on a network: a SQLite store, or a tracking server that answers its health check
    at once (a light request, one second at most, without retries). MLflow's own write to a
    server that does not answer would retry for minutes."""
    scheme = uri.partition(":")[0].lower()
    if scheme == "sqlite":
        return True
    if scheme not in ("http", "https"):
        return False
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except Exception:
        return False


_CAP_SYS_NICE = 23


def _priority_reversible() -> bool:
    """Whether this process may raise the export process's priority again once it has
    lowered it. On Linux that takes ``CAP_SYS_NICE`` (root has it; root in a container
    often does not) or an ``RLIMIT_NICE`` that allows nice 0; elsewhere, root. For anyone
    else, lowering it to ``SCHED_IDLE`` or nice 19 would be for good."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    if int(line.split()[1], 16) >> _CAP_SYS_NICE & 1:
                        return True
                    break
            else:
                raise OSError("no CapEff")
    except (OSError, ValueError):
        return hasattr(os, "geteuid") and os.geteuid() == 0
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_NICE)[0]  # type: ignore[attr-defined,unused-ignore]
    except (ImportError, AttributeError, OSError, ValueError):
        return False
    return limit == resource.RLIM_INFINITY or limit >= 20


_export_process: ExportProcess | None = None
_singleton_lock = threading.Lock()
_before_close: list[Callable[[], None]] = []


def before_close(callback: Callable[[], None]) -> None:
    """Run ``callback`` first when the export process is closed (at exit): the recorder's
    layer ends the spans of streams still open, whose traces the exit flush must find."""
    _before_close.append(callback)


def export_process() -> ExportProcess:
    """The process's one :class:`ExportProcess`."""
    global _export_process
    if _export_process is None:
        with _singleton_lock:
            if _export_process is None:
                _export_process = ExportProcess()
                atexit.register(_export_process.close)
    return _export_process


def started_export_process() -> ExportProcess | None:
    """The process's :class:`ExportProcess` if one was made, without making one."""
    return _export_process
