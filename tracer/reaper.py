"""Ends the spans of response streams the caller dropped, from a place where that is safe.

An abandoned stream (``for chunk in stream: break`` and the stream never closed) is often part
of a reference cycle (the openai SDK's ``Stream`` is one), freed by the cyclic garbage collector
at whatever allocation triggers it: inside MLflow's tracer set-up, which holds a
non-reentrant lock, inside httpcore's connection pool, which holds another, inside the logging
module. Ending its span there (which calls MLflow), or closing its pooled connection there
(which takes the pool's lock), could wait on a lock its own thread holds, for ever.

So nothing of the tracer's that the collector can reach does either:

- the finalizer of an observed stream (:func:`abandoned`) only puts the recorder and the time
  on a :class:`queue.SimpleQueue` (whose ``put`` is reentrant: safe in a finalizer, a
  garbage-collector callback or a signal handler) and returns;
- a stream closed from inside a collection (the SDK's generator, freed with its cycle, closes
  its response in a ``finally``) leaves the inner stream's ``close`` and the span's ending to
  the queue too (:func:`close_later`; ``gc.callbacks`` record which thread is collecting, and
  nothing else), and a stream's inner iterator is kept reachable while it is read
  (:func:`hold`), so the collector never finalizes it in place.

A daemon thread, ``tracer-reaper``, takes the queue: it closes what is left to close and ends
the spans with what was read and ``stream.abandoned`` set. A flush first waits for it
(:func:`settle`). At exit, before the trace export is flushed, the queue is drained, and every
stream still open (still referenced, or read by a thread that is still running) is ended the
same way, so its trace is written with the others (:func:`end_all`).

State belongs to the process that made it: a forked child starts with an empty registry and
its own thread, and never ends its parent's spans. Nothing here runs in an at-fork hook.
"""

from __future__ import annotations

import atexit
import gc
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from tracer import _export_process, export
from tracer.failsafe import internal_error

__all__ = [
    "SETTLE_SECONDS",
    "Abandonable",
    "abandoned",
    "at_exit",
    "close_later",
    "collecting",
    "end_all",
    "finalizer",
    "forget",
    "hold",
    "release",
    "settle",
]

#: How long a flush or the exit waits, at most, for the reaper thread to end the spans it
#: holds (at exit, it then ends the rest itself).
SETTLE_SECONDS = 10.0


class Abandonable(Protocol):
    """What the reaper needs of a recorder."""

    def on_abandoned(self, at_ns: int, reason: str) -> None:
        """End the span with what was read; the stream was dropped (or left open at exit)
        at ``at_ns`` (``time.time_ns()``)."""


class _Barrier:
    """Put on the queue by :func:`at_exit`: set once everything before it is done."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


#: A span to end (its recorder, when it was dropped, and the inner stream's ``close`` if that
#: is left to do), or a barrier.
_Item = tuple["Abandonable | None", int, "Callable[[], object] | None"] | _Barrier


class _State:
    """The reaper of one process."""

    __slots__ = ("busy", "ended", "held", "live", "pid", "queue", "settled", "thread")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        # Recorders of observed streams not ended yet, by id: what is still open at exit.
        self.live: dict[int, Abandonable] = {}
        # Inner iterators of streams being read: kept reachable, so a garbage collection never
        # finalizes one itself (see close_later).
        self.held: dict[int, object] = {}
        self.thread: threading.Thread | None = None
        self.busy = False  # the thread is ending a span (written by that thread only)
        self.ended = self.settled = 0  # spans ended; how many the last settle() had seen


_state = _State()
_strict = False
#: The thread running a garbage collection, if any (``gc.callbacks`` keep it).
_collector = 0


def _on_collection(phase: str, info: dict[str, int]) -> None:
    """A ``gc.callbacks`` entry: only records which thread is collecting."""
    global _collector
    _collector = threading.get_ident() if phase == "start" else 0


def collecting() -> bool:
    """Whether the calling thread is inside a garbage collection (running some object's
    finalizer): then nothing may take a lock the interrupted code could hold, or call MLflow."""
    return _collector == threading.get_ident()


def _current() -> _State:
    """This process's state (a fresh one in a forked child, made here, not at the fork)."""
    global _state
    state = _state
    if state.pid != os.getpid():
        state = _state = _State()
    return state


def finalizer(
    stream: object, recorder: Abandonable, *, strict: bool = False
) -> weakref.finalize[Any, Any]:
    """Register ``recorder``'s stream as open and return the finalizer that hands it to the
    reaper if ``stream`` is dropped without being closed (``detach()`` it on close). Called
    on the caller's thread, when the response is observed; starts the reaper thread the
    first time in a process."""
    global _strict
    state = _current()
    state.live[id(recorder)] = recorder
    _strict = _strict or strict
    if state.thread is None:
        _start(state)
        if _on_collection not in gc.callbacks:
            gc.callbacks.append(_on_collection)
    finalize = weakref.finalize(stream, abandoned, recorder, state)
    finalize.atexit = False  # a stream still open at exit is end_all's
    return finalize


def forget(recorder: Abandonable) -> None:
    """``recorder``'s span has ended: its stream is no longer open."""
    _state.live.pop(id(recorder), None)


def abandoned(recorder: Abandonable, state: _State) -> None:
    """The finalizer of an observed stream the caller dropped without closing: record the
    time and hand the span's ending to the reaper thread. Nothing else: no lock, no MLflow,
    no logging (see the module's docstring)."""
    if state.pid == os.getpid():
        state.queue.put((recorder, time.time_ns(), None))


def hold(iterator: object) -> None:
    """Keep a stream's inner iterator reachable while the stream is read: when the stream is
    dropped with its reference cycle, the collector then finalizes only the tracer's own
    iterator, which hands the inner one to :func:`close_later`, instead of finalizing the
    inner one in place (under whatever lock the interrupted code holds)."""
    _current().held[id(iterator)] = iterator


def release(iterator: object) -> None:
    """The stream's iterator ended (or was handed to :func:`close_later`)."""
    _state.held.pop(id(iterator), None)


def close_later(close: Callable[[], object], recorder: Abandonable | None) -> None:
    """A stream is closed from inside a garbage collection (the SDK's stream generator, freed
    with its reference cycle, closes its response in its ``finally``): the inner stream's
    ``close`` takes the connection pool's lock, which the interrupted code on this thread may
    hold (httpcore's is not reentrant), and ending the span calls MLflow. Both are left to the
    reaper thread; ``recorder`` is ``None`` when the span is already handed over."""
    _current().queue.put((recorder, time.time_ns(), close))


def _start(state: _State) -> None:
    thread = threading.Thread(target=_reap, args=(state,), name="tracer-reaper", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # at interpreter shutdown: at_exit ends what is queued
        return
    state.thread = thread


def _reap(state: _State) -> None:
    while True:
        item = state.queue.get()
        state.busy = True
        try:
            _handle(item)
        finally:
            state.busy = False


def _handle(item: _Item) -> None:
    if isinstance(item, _Barrier):
        item.event.set()
        return
    recorder, at_ns, close = item
    if close is not None:
        try:
            close()
        except Exception as exc:  # the connection is the HTTP library's: as if closed by GC
            internal_error("closing a dropped stream", exc, strict=False)
    if recorder is not None:
        _end(recorder, at_ns, "garbage-collected")


def _end(recorder: Abandonable, at_ns: int, reason: str) -> None:
    _state.ended += 1
    try:
        recorder.on_abandoned(at_ns, reason)
    except Exception as exc:  # on_abandoned reports its own errors; this is a last guard
        try:
            internal_error("ending an abandoned stream's span", exc, strict=_strict)
        except Exception:  # strict mode: the error goes where a thread's errors go
            threading.excepthook(
                threading.ExceptHookArgs(
                    (type(exc), exc, exc.__traceback__, threading.current_thread())
                )
            )


def settle(timeout: float = SETTLE_SECONDS) -> bool:
    """Wait until every abandoned stream handed over so far has its span ended (at most
    ``timeout`` seconds, and never more than :data:`SETTLE_SECONDS`; at once when there is
    none), so that a flush finds it. Returns whether a span was ended since the previous call
    (a flush must then gather MLflow's spans again). Called before the tracer's and MLflow's
    flushes (:func:`tracer.export.before_flush`)."""
    state = _state
    if state.pid != os.getpid():
        return False
    thread = state.thread
    if thread is threading.current_thread():
        pass  # a flush from within ending a span: what is queued waits for it
    elif thread is not None and thread.is_alive():
        if state.busy or not state.queue.empty():
            barrier = _Barrier()
            state.queue.put(barrier)
            barrier.event.wait(min(timeout, SETTLE_SECONDS))
    else:  # never started (or at interpreter shutdown): end them here, in order
        while True:
            try:
                item = state.queue.get_nowait()
            except queue.Empty:
                break
            _handle(item)
    ended, state.settled = state.ended != state.settled, state.ended
    return ended


def end_all() -> None:
    """End every abandoned or still open stream's span (with what was read): what the export
    process's exit flush must find. Waits at most :data:`SETTLE_SECONDS` for the reaper
    thread, then ends what is left itself. Called first by
    :meth:`~tracer._export_process.ExportProcess.close`."""
    state = _state
    if state.pid != os.getpid():
        return
    settle()
    while True:  # what the thread did not reach in time, in order
        try:
            item = state.queue.get_nowait()
        except queue.Empty:
            break
        _handle(item)
    now = time.time_ns()
    for recorder in list(state.live.values()):
        _end(recorder, now, "open at exit")


def at_exit() -> None:
    """The tracer's exit: the spans of abandoned and open streams end, then the export
    process writes every trace (:meth:`~tracer._export_process.ExportProcess.close`, which
    ends the spans itself when it runs first, as it does in a ``multiprocessing`` worker).

    Registered at import, so it also runs for an export process started during the exit
    (by the first span ever ended, here), whose own ``atexit`` registration comes too late."""
    end_all()
    process = _export_process.started_export_process()
    if process is not None:
        process.close()


_export_process.before_close(end_all)
export.before_flush(settle)
atexit.register(at_exit)
