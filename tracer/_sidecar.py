"""The export process: writes traces to MLflow's tracking store for :mod:`tracer.export`.

Not for direct use, and self-contained on purpose (the standard library and MLflow only): it is
started by file path, so importing it loads neither the tracer package nor httpx or pydantic.

Protocol, one JSON document per line. From the application on standard input:

- ``{"op": "env", "env": {...}}``: the application's environment from now on (credentials
  rotated, variables set in code after this process started);
- ``{"op": "spans", "id": N, "uri": ..., "workspace": ..., "experiment_id": ..., "spans": [...]}``
  and ``{"op": "trace", "id": N, "uri": ..., "workspace": ..., "info": ..., "spans": [...]}``
  (the trace's info pickled, base64; or ``"trace": {...}``, ``Trace.to_dict``, for an info that
  cannot be pickled): the two writes of MLflow's exporter (``_log_spans`` and ``_log_trace``),
  each naming the tracking URI and workspace it is for, as MLflow would have written it then;
- ``{"op": "flush", "token": T, "final": bool}``: answer once everything before it is done.

Back on standard output: ``{"ready": true}`` once started, ``{"ok": [N, ...]}``,
``{"failed": [[N, reason], ...]}`` and ``{"flushed": T, "waiting": K}`` (K traces wait for the
store). A write counts as done only when the store accepted it. A write the store rejects is
tried once more, then reported failed. A write a tracking server answers with a server error
(a 5xx other than 502, 503 and 504) while it takes other writes, or answers a light read, is
refused for what it holds: it is tried again without holding the others, and reported failed
after :data:`MAX_ANSWERED_ERRORS` such answers. A write that finds the store unreachable
(connection refused, time-out, 408, 429, 502-504, a server error while it takes nothing, a
locked database) waits, with the writes after it, and is tried again with back-off and at
every flush; a final flush tries once more and reports what still cannot be written as
failed. A request to a server that does not answer ends after
:data:`REQUEST_TIMEOUT` seconds (``MLFLOW_HTTP_REQUEST_TIMEOUT`` where the application sets
it), without retries: an attempt at a store that is gone ends at its first such request.

Writes to a store other than SQLite go out in parallel (:func:`write`). When the application
closes its end (it exited, or was killed), what was read is still written, for at most
:data:`FINAL_SECONDS`; once its answers cannot be delivered, what could not be written is
counted and reported in one line on standard error at the end, and nothing else is printed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import pickle
import queue
import re
import signal
import sys
import threading
import time
import warnings
from collections import defaultdict, deque
from typing import Any

Message = dict[str, Any]

MAX_BATCH = 256
#: Writes between two answers (the application sees progress, or its absence).
ACK_EVERY = 32
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
#: MLflow's own HTTP retries (about four minutes of back-off) would hold every write behind
#: an unreachable server; this process has its own retry loop instead.
FORCED_ENV = {
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
}
#: How long one request to a tracking server waits for it, at most (to connect, and for each
#: part of its answer): ``MLFLOW_HTTP_REQUEST_TIMEOUT`` where the application sets it, else
#: this, not MLflow's 120 s. A server that does not answer (paused, or gone without closing its
#: connections) holds the writes after it, and every flush, that long; at exit the last
#: attempt must end well within the application's 30 s wait, so that it can report what could
#: not be written.
REQUEST_TIMEOUT = 10
DEFAULT_ENV = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)}
_TRANSIENT_NAMES = {
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "MaxRetryError",
    "NewConnectionError",
    "ProtocolError",
    "RemoteDisconnected",
    "OperationalError",  # SQLAlchemy: a locked or unreachable database
}
_TRANSIENT_TEXT = (
    "Max retries exceeded",
    "Connection refused",
    "Connection aborted",
    "database is locked",
    "timed out",
    "TEMPORARILY_UNAVAILABLE",
)
_RETRY = object()


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is unreachable for now (as opposed to rejecting the write)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ in _TRANSIENT_NAMES:
            return True
        status = getattr(error, "get_http_status_code", lambda: None)()
        if status in (408, 429, 500, 502, 503, 504):
            return True
        text = str(error)
        if any(marker in text for marker in _TRANSIENT_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


#: Traces remembered, at most, whose spans the store refused before their info came.
MAX_REFUSED = 10_000
#: How many times the store may answer one write with a server error, while it takes the
#: others, before that write is reported failed (it will not be taken: a bad trace).
MAX_ANSWERED_ERRORS = 3
#: What MLflow's HTTP client raises when a server answered with an error status and no error
#: document of MLflow's (its retries are off here): ``... (Caused by ResponseError('too many
#: 500 error responses'))``; with one, it raises a ``RestException`` carrying the status.
_ANSWERED = re.compile(r"too many (\d{3}) error responses")
#: Statuses that say the server is busy or that what stands before it is down, not that it
#: cannot take this payload: the write waits like one to an unreachable store.
_BUSY_STATUSES = {408, 429, 502, 503, 504}


def answered_error(exc: BaseException) -> int | None:
    """The server-error status (5xx) a tracking server answered the write with, when it did
    answer and the status does not say it is busy or unreachable; else ``None``."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        status: int | None = None
        if type(error).__name__ == "RestException":  # the server's own error document
            status = getattr(error, "get_http_status_code", lambda: None)()
        else:
            found = _ANSWERED.search(str(error))
            status = int(found.group(1)) if found is not None else None
        if status is not None:
            if status < 500 or status in _BUSY_STATUSES or _says_busy(exc):
                return None
            return status
        error = error.__cause__ or error.__context__
    return None


def _says_busy(exc: BaseException) -> bool:
    """Whether a server error's text says the store is busy for every write (a locked
    database behind the server, a time-out), not that it cannot take this one."""
    text = describe(exc)
    return any(marker in text for marker in _BUSY_TEXT)


_BUSY_TEXT = tuple(m for m in _TRANSIENT_TEXT if m != "Max retries exceeded")


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:400]


class Store:
    """MLflow's write path, as ``MlflowV3SpanExporter._log_spans`` / ``_log_trace`` take it,
    except that failures are raised (MLflow's exporter logs and forgets them)."""

    def __init__(self) -> None:
        from mlflow.entities import Span, Trace, TraceData
        from mlflow.tracing.client import TracingClient
        from mlflow.tracing.constant import SpansLocation, TraceTagKey
        from mlflow.tracing.utils import add_size_stats_to_trace_metadata

        self._span, self._trace, self._client_class = Span, Trace, TracingClient
        self._trace_data = TraceData
        self._tracking_store = SpansLocation.TRACKING_STORE.value
        self._spans_location = TraceTagKey.SPANS_LOCATION
        self._size_stats = add_size_stats_to_trace_metadata
        self._clients: dict[str, Any] = {}
        self._no_log_spans: set[str] = set()
        self._keeps_spans: set[str] = set()
        self._refused: set[str] = set()  # traces whose spans were refused, info not yet written

    def client(self, uri: str) -> Any:
        """MLflow's tracing client for ``uri`` (its store connects when it is made)."""
        client = self._clients.get(uri)
        if client is None:
            client = self._clients[uri] = self._client_class(uri)
        return client

    @staticmethod
    def _workspace(name: str | None) -> Any:
        if not name:
            return contextlib.nullcontext()
        from mlflow.utils.workspace_context import ServerWorkspaceContext

        return ServerWorkspaceContext(name)

    def answers(self, uri: str, workspace: str | None) -> bool:
        """Whether the store at ``uri`` answers a light read: it is up, so a write it answers
        with a server error is refused for what that write holds."""
        try:
            with self._workspace(workspace):
                self.client(uri).store.search_experiments(max_results=1)
        except Exception:
            return False
        return True

    def log_spans(
        self, uri: str, workspace: str | None, experiment_id: str, spans: list[Message]
    ) -> None:
        if uri in self._no_log_spans:
            return  # the trace's data goes to the artifact store with the trace instead
        built = [self._span.from_dict(span) for span in spans]
        with self._workspace(workspace):
            try:
                self.client(uri).log_spans(experiment_id, built)
            except NotImplementedError:
                self._no_log_spans.add(uri)
            except Exception as exc:
                if "REST OTLP span logging is not supported" in str(exc):
                    self._no_log_spans.add(uri)
                else:
                    raise
            else:
                self._keeps_spans.add(uri)

    def keeps_spans(self, uri: str) -> bool:
        """Whether the store at ``uri`` has taken spans through ``log_spans`` (so a trace's
        spans are in its tables, not uploaded with the trace)."""
        return uri in self._keeps_spans

    def trace_of(self, message: Message) -> Any:
        """The trace a ``trace`` message carries: its info pickled and its spans, or (when the
        info could not be pickled) the whole trace as ``Trace.to_dict`` gives it."""
        if "trace" in message:
            return self._trace.from_dict(message["trace"])
        info = pickle.loads(base64.b64decode(message["info"]))
        spans = [self._span.from_dict(span) for span in message["spans"]]
        return self._trace(info=info, data=self._trace_data(spans=spans))

    def log_trace(
        self, uri: str, workspace: str | None, message: Message, spans_follow: bool = False
    ) -> None:
        """Write the trace's info, and its spans to the artifact store where the store's tables
        do not hold them, as MLflow's exporter does. With ``spans_follow``, its spans are
        written to the store's tables after this (see :func:`write`), unless they were refused
        already."""
        trace = self.trace_of(message)
        client = self.client(uri)
        with self._workspace(workspace):
            self._size_stats(trace)
            info = client.start_trace(trace.info)
            refused = info.trace_id in self._refused
            self._refused.discard(info.trace_id)
            if spans_follow and not refused:
                return
            if info.tags.get(self._spans_location) != self._tracking_store:
                client._upload_trace_data(info, trace.data)

    def spans_refused(self, message: Message) -> None:
        """A span write refused for good: its spans go to the artifact store with their trace,
        as MLflow's exporter uploads the spans of a trace that the store's tables did not take.
        Where a trace's info is written already (it went first), they are uploaded now, with
        the info read back; otherwise its info's write uploads the trace's spans
        (best effort: the refusal is reported already)."""
        uri, workspace = message["uri"], message.get("workspace")
        by_trace: dict[str | None, list[Message]] = defaultdict(list)
        for span in message["spans"]:
            by_trace[_trace_id(span)].append(span)
        by_trace.pop(None, None)
        client = self.client(uri)
        with self._workspace(workspace):
            for trace_id, spans in by_trace.items():
                try:
                    info = client.get_trace_info(trace_id)
                except Exception:
                    if len(self._refused) < MAX_REFUSED:
                        self._refused.add(str(trace_id))
                    continue
                with contextlib.suppress(Exception):
                    data = self._trace_data(spans=[self._span.from_dict(s) for s in spans])
                    client._upload_trace_data(info, data)


def write(
    store: Store, messages: list[Message]
) -> tuple[list[int], list[list[Any]], list[Message], list[Message]]:
    """Write ``messages``: each trace's info and its spans, the spans in one store call per
    tracking URI, workspace and experiment. Returns the ids written, the ids that failed with
    their reasons, the messages to try again later in order (their store is unreachable), and
    those to try again without holding the others (the store answered them with a server
    error while it took other writes or answered a read: after :data:`MAX_ANSWERED_ERRORS`
    such answers, one fails alone).

    MLflow's exporter writes a trace's spans, then its info; a store known to keep spans in
    its tables (``log_spans`` has worked there) gets the info first instead, which the store
    then takes in one insert rather than merged into the row its spans made (under half the
    CPU time, for the same rows: ``docs/performance.md``). Where a span write is refused for
    good, its spans are uploaded with their traces, as MLflow's exporter would have
    (:meth:`Store.spans_refused`). Writes to a store
    other than SQLite (a tracking server, a database server) go out in parallel, on up to
    ``MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS`` threads as in MLflow's own exporter; SQLite
    takes one writer at a time."""
    ok: list[int] = []
    failed: list[list[Any]] = []
    later: list[Message] = []
    down: set[str] = set()
    up: set[str] = set()  # took a write in this call, or answered a read
    probed: set[str] = set()
    answered: list[tuple[Message, int]] = []

    def attempt(message: Message, action: Any) -> None:
        for last_try in (False, True):
            try:
                action()
            except Exception as exc:
                status = answered_error(exc)
                if status is not None:
                    answered.append((message, status))
                    return
                if transient(exc):
                    down.add(message["uri"])
                    later.append(message)
                    return
                if last_try:
                    failed.append([message["id"], describe(exc)])
                    return
            else:
                ok.append(message["id"])
                up.add(message["uri"])
                return

    def info_first(message: Message) -> None:
        attempt(
            message,
            lambda: store.log_trace(message["uri"], message.get("workspace"), message, True),
        )

    def trace_after(message: Message) -> None:
        if message["uri"] in down:
            later.append(message)
        else:
            attempt(
                message, lambda: store.log_trace(message["uri"], message.get("workspace"), message)
            )

    def spans(key: tuple[str, str | None, str], group: list[Message]) -> None:
        uri, workspace, experiment_id = key
        if uri in down:
            later.extend(group)
            return
        try:
            store.log_spans(uri, workspace, experiment_id, [s for m in group for s in m["spans"]])
        except Exception as exc:
            if answered_error(exc) is None and transient(exc):
                down.add(uri)
                later.extend(group)
                return
            for message in group:  # one at a time: only a bad one fails
                if message["uri"] in down:
                    later.append(message)
                    continue
                attempt(
                    message,
                    lambda m=message: store.log_spans(
                        m["uri"], m.get("workspace"), m["experiment_id"], m["spans"]
                    ),
                )
        else:
            ok.extend(message["id"] for message in group)
            up.add(uri)

    groups: dict[tuple[str, str | None, str], list[Message]] = defaultdict(list)
    for message in messages:
        if message["op"] == "spans":
            key = (message["uri"], message.get("workspace"), message["experiment_id"])
            groups[key].append(message)
    first: list[Message] = []
    after: list[Message] = []
    for message in messages:
        if message["op"] == "trace":
            (first if store.keeps_spans(message["uri"]) else after).append(message)
    _each([(m["uri"], functools.partial(info_first, m)) for m in first])
    _each([(key[0], functools.partial(spans, key, group)) for key, group in groups.items()])
    _each([(m["uri"], functools.partial(trace_after, m)) for m in after])
    again: list[Message] = []
    for message, status in answered:
        message["status"] = status
        uri = message["uri"]
        if uri not in up and uri not in down and uri not in probed:
            probed.add(uri)
            if store.answers(uri, message.get("workspace")):
                up.add(uri)
        if uri not in up:  # it takes nothing: it may be failing for every write
            later.append(message)
            continue
        count = message["answered"] = message.get("answered", 0) + 1
        if count >= MAX_ANSWERED_ERRORS:
            reason = f"the tracking store answered HTTP {status} {count} times for this trace"
            failed.append([message["id"], reason])
        else:
            again.append(message)
    refused = {number for number, _ in failed}
    for message in messages:
        if message["op"] == "spans" and message["id"] in refused:
            store.spans_refused(message)
    later.sort(key=lambda m: m["id"])  # in the order they came
    return ok, failed, later, again


def _trace_id(span: Message) -> str | None:
    """MLflow's trace id of a span in ``Span.to_dict`` form (a JSON-encoded attribute)."""
    try:
        value = json.loads(span["attributes"]["mlflow.traceRequestId"])
    except Exception:
        return None
    return value if isinstance(value, str) else None


_pool: Any = None


def _each(jobs: list[tuple[str, Any]]) -> None:
    """Run each ``(uri, job)``: those for SQLite here, one after another; the others on the
    writing threads, at once. Returns when all are done."""
    serial = [job for uri, job in jobs if uri.lower().startswith("sqlite")]
    parallel = [job for uri, job in jobs if not uri.lower().startswith("sqlite")]
    if len(parallel) < 2:
        serial, parallel = serial + parallel, []
    futures = [_writers().submit(job) for job in parallel]
    for job in serial:
        job()
    for future in futures:
        future.result()


def _writers() -> Any:
    """The threads that write to stores other than SQLite, made at the first such write."""
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        from mlflow.environment_variables import MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS

        workers = max(1, MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS.get())
        _pool = ThreadPoolExecutor(workers, thread_name_prefix="tracer-export-write")
    return _pool


def last_failure(message: Message) -> str:
    """Why a write still waiting at the end was not written."""
    if "status" in message:
        return f"the tracking store answered HTTP {message['status']} for this trace"
    return "the tracking store was unreachable"


def skip_unreachable_catalog() -> None:
    """MLflow prices each LLM span as it stores it, with a model catalog fetched from
    ``MLFLOW_MODEL_CATALOG_URI`` (three attempts with back-off, 7.6 s when it cannot be
    reached), falling back to the prices bundled with MLflow. One quick request tells whether
    the catalog can be reached; if not, MLflow is pointed at its bundled prices at once (the
    ones it would have fallen back to), so no write waits for retries that cannot succeed.
    Also used by the application at exit, when it writes its last traces itself."""
    if not catalog_unreachable():
        return
    FORCED_ENV["MLFLOW_MODEL_CATALOG_URI"] = ""
    os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""


def catalog_unreachable() -> bool:
    """Whether MLflow's remote model catalog is set and cannot be reached (one request, at most
    2 s)."""
    import urllib.request

    from mlflow.environment_variables import MLFLOW_MODEL_CATALOG_URI

    base = MLFLOW_MODEL_CATALOG_URI.get()
    if not base or not base.startswith(("http://", "https://")):
        return False
    try:
        request = urllib.request.Request(f"{base.rstrip('/')}/openai.json", method="HEAD")
        with urllib.request.urlopen(request, timeout=2):
            return False
    except Exception:
        return True


def apply_env(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)
    settle_env()


def settle_env() -> None:
    """This process's own settings over the application's environment: :data:`FORCED_ENV`
    always, :data:`DEFAULT_ENV` where the application sets nothing else."""
    os.environ.update(FORCED_ENV)
    for name, value in DEFAULT_ENV.items():
        os.environ.setdefault(name, value)


#: How long, at most, the export process goes on writing what it holds once its application
#: has closed its end (it exited, was killed, or ended its own wait at exit); what is left
#: then is counted as not written.
FINAL_SECONDS = 60.0
_OUT_OF_TIME = f"not written within {FINAL_SECONDS:.0f} s of the application's end"


class Answers:
    """The answers to the application, on standard output. Once the application is gone (the
    pipe is broken), the traces that could not be written are counted instead and, at the end,
    reported in one line on standard error (the application's: its terminal or its log)."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self.gone = False
        self._lost = 0
        self._reason = ""

    def send(self, message: Message) -> None:
        if self.gone:
            return
        try:
            self._out.write(json.dumps(message) + "\n")
            self._out.flush()
        except (OSError, ValueError):  # a broken pipe, or closed
            self.gone = True

    def failed(self, failed: list[list[Any]], messages: Any) -> None:
        """Report ``failed`` (``[id, reason]``, writes among ``messages``)."""
        self.send({"failed": failed})
        if self.gone:
            traces = {m["id"] for m in messages if m["op"] == "trace"}
            lost = [reason for number, reason in failed if number in traces]
            self._lost += len(lost)
            self._reason = self._reason or (lost[0] if lost else "")

    def close(self) -> None:
        if self._lost:
            with contextlib.suppress(Exception):
                sys.stderr.write(
                    f"tracer: the export process could not write {self._lost} trace(s) after "
                    f"the application ended ({self._reason})\n"
                )
                sys.stderr.flush()


def main() -> None:
    """Write every trace read from standard input until it closes."""
    # It ends with the application, when its input closes, and not before: a Ctrl-C, a hang-up
    # or a service manager's SIGTERM to every process of the application reaches the
    # application, which then writes its last traces through this process.
    for number in ("SIGINT", "SIGTERM", "SIGHUP"):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.signal(getattr(signal, number), signal.SIG_IGN)
    logging.disable(logging.CRITICAL)  # failures go back to the application, which reports them
    warnings.simplefilter("ignore")
    settle_env()
    inbox: queue.Queue[Any] = queue.Queue()
    closed_at: list[float] = []  # when the application closed its end: then time is counted

    def read() -> None:
        try:
            for line in sys.stdin.buffer:
                with contextlib.suppress(ValueError):  # a line cut short by a killed application
                    if line.strip():
                        inbox.put(json.loads(line))
        finally:
            closed_at.append(time.monotonic())
            inbox.put(None)

    threading.Thread(target=read, name="tracer-export-read", daemon=True).start()
    answers = Answers(sys.stdout)
    send = answers.send

    store = Store()
    for uri in sys.argv[1:]:  # the tracking URI in use when it was started: connect now
        with contextlib.suppress(Exception):
            store.client(uri)
    skip_unreachable_catalog()
    send({"ready": True})
    waiting: deque[Message] = deque()
    retry_at = 0.0
    backoff = RETRY_FIRST
    finished = False
    while not finished:
        timeout = max(0.0, retry_at - time.monotonic()) if waiting else None
        try:
            first = inbox.get(timeout=timeout)
        except queue.Empty:
            first = _RETRY
        received = [first]
        while len(received) < MAX_BATCH:
            try:
                received.append(inbox.get_nowait())
            except queue.Empty:
                break
        work: list[Message] = []
        flushes: list[Message] = []
        for message in received:
            if message is None:
                finished = True
            elif message is _RETRY:
                continue
            elif message["op"] == "env":
                apply_env(message["env"])
            elif message["op"] == "flush":
                flushes.append(message)
            else:
                work.append(message)
        if waiting:
            if first is _RETRY or flushes or finished:
                work = [*waiting, *work]
                waiting.clear()
            else:  # the store is still unreachable: keep the order, try again at the timer
                waiting.extend(work)
                work = []
        later: list[Message] = []
        again: list[Message] = []
        out_of_time = False
        for start in range(0, len(work), ACK_EVERY):  # answers as it goes: progress shows
            chunk = work[start : start + ACK_EVERY]
            if closed_at and time.monotonic() > closed_at[0] + FINAL_SECONDS:
                out_of_time = True
            if later or out_of_time:  # unreachable, or out of time: the rest waits, in order
                later.extend(chunk)
                continue
            ok, failed, later, refused = write(store, chunk)
            again.extend(refused)
            if ok:
                send({"ok": ok})
            if failed:
                answers.failed(failed, chunk)
        rounds = 1
        while again and not later and (flushes or finished) and rounds < MAX_ANSWERED_ERRORS:
            # Someone waits: settle the writes the store refuses now, not at the timer.
            rounds += 1
            retried = again
            ok, failed, later, again = write(store, retried)
            if ok:
                send({"ok": ok})
            if failed:
                answers.failed(failed, retried)
        if work:
            waiting.extend(sorted([*later, *again], key=lambda m: m["id"]))
            if later:
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, RETRY_MAX)
            else:
                backoff = RETRY_FIRST
                if again:  # the store works: try those again soon, with what comes next
                    retry_at = time.monotonic() + RETRY_FIRST
        if waiting and (finished or out_of_time or any(f.get("final") for f in flushes)):
            reason = _OUT_OF_TIME if out_of_time else None
            answers.failed([[m["id"], reason or last_failure(m)] for m in waiting], waiting)
            waiting.clear()
        for flush in flushes:
            traces = sum(message["op"] == "trace" for message in waiting)
            send({"flushed": flush["token"], "waiting": traces})

    answers.close()


if __name__ == "__main__":
    main()
    # Everything is written and answered: end without the interpreter's clean-up of MLflow's
    # modules, CPU time that would only delay the exit (and hold the application's stderr).
    os._exit(0)
