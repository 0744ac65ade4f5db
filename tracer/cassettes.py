"""Record and replay: the LLM exchanges the transport sees, kept as test cassettes.

While a cassette is in use, every LLM call of the process that crosses the tracer's transport
(``TracedClient``, a wrapped client, any httpx or httpx2 client under
:func:`tracer.instrument`) is answered from the cassette or sent and recorded into it, by its
record mode (vcrpy's names):

- ``once`` (the default): replay when the cassette exists, record when it does not;
- ``none``: replay only; a request that is not in the cassette raises :class:`CassetteMiss`,
  and nothing goes to the network (what CI uses);
- ``new_episodes``: replay what is there, record and append what is not;
- ``all``: always send and record; the cassette's earlier exchanges are replaced.

Replay is exact: the status, the headers (less those that describe the transfer rather than
the answer, and cookies) and the body as the SDK read it; a stream arrives as its recorded
chunks, in order, with their boundaries, and with ``pace=True`` at their recorded times.
Identical requests replay in the order they were recorded. Replayed calls are traced like live
ones; their span carries ``tracer.replayed = true`` and ``tracer.cassette`` (the path).

From Python::

    with tracer.cassette("tests/cassettes/answer.json", mode="none"):
        assert my_agent("What is 2 + 2?") == "4"

From the environment: ``TRACER_CASSETTE=path`` (and ``TRACER_RECORD_MODE``) puts a cassette
under every call of the process. In pytest: ``@pytest.mark.llm_cassette`` and
``--llm-record-mode`` (:mod:`tracer.pytest_plugin`). What is matched and what is never written
(credentials, by the same rules as spans): :mod:`tracer._cassette_match`; the file:
:mod:`tracer._cassette_file`; ``docs/cassettes.md``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from tracer import redact
from tracer._cassette_file import CassetteError, body_of, encode_bytes, load, save
from tracer._cassette_match import (
    Ignore,
    closest,
    comparable,
    describe,
    stored_request,
)
from tracer.failsafe import warn_once

__all__ = [
    "RECORD_MODES",
    "Cassette",
    "CassetteError",
    "CassetteMiss",
    "RecordMode",
    "cassette",
    "current",
    "wanted",
]

RecordMode = Literal["once", "none", "new_episodes", "all"]
RECORD_MODES: tuple[str, ...] = get_args(RecordMode)

#: Response headers a cassette does not keep: cookies, which are credentials.
_UNKEPT_HEADERS = frozenset({"set-cookie", "set-cookie2"})


class CassetteMiss(Exception):
    """A request the cassette cannot answer (record mode ``none``, or ``once`` with the
    cassette already recorded). Not an HTTP error, so SDKs do not retry it: the message names
    the request, the cassette, and the closest recorded request with what differs."""


def _kept_headers(headers: Any) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _UNKEPT_HEADERS or lower.replace("-", "_") in redact.SECRET_FIELDS:
            continue
        value = redact.safe_url(value) if lower == "location" else value
        kept[lower] = f"{kept[lower]}, {value}" if lower in kept else value
    return kept


class Recording:
    """One exchange being recorded: the response's chunks as the SDK reads them, saved to the
    cassette once the body ends, is closed, or breaks."""

    def __init__(self, tape: Cassette, request: dict[str, Any]) -> None:
        self.tape = tape
        self.request = request
        self._sent = time.perf_counter()
        self._head: float | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._streamed = False
        self._decoder: Any = None
        self._decoded: list[str] = []
        self._chunks: list[bytes] = []
        self._times: list[float] = []
        self._error: str | None = None
        self._done = False
        self._lock = threading.Lock()

    def on_response(
        self, status: int, headers: Any, decoder: Any, decoded: list[str] | None = None
    ) -> None:
        """The response head arrived; ``decoder`` undoes the ``decoded`` content encodings
        (the body is kept as the SDK reads it, and encoded again when replayed), or is
        ``None``."""
        self._head = time.perf_counter()
        self._decoded = decoded or []
        self._status = status
        self._headers = _kept_headers(headers)
        content_type = (headers.get("content-type") or "").lower()
        self._streamed = (
            "event-stream" in content_type
            or "ndjson" in content_type
            or (
                isinstance(self.request.get("json"), dict)
                and self.request["json"].get("stream") is True
            )
        )
        self._decoder = decoder

    def on_chunk(self, chunk: bytes) -> None:
        """A raw chunk of the body, as the transport read it."""
        data = self._decoder.decode(chunk) if self._decoder is not None else chunk
        if data:
            with self._lock:
                self._chunks.append(data)
                self._times.append(time.perf_counter())

    def on_error(self, exc: BaseException) -> None:
        """The body broke off: what arrived is kept, and the error replays after it."""
        self._error = f"{type(exc).__name__}: {exc}"
        self.finish()

    def discard(self) -> None:
        """No response came (the request failed): nothing to save."""
        with self._lock:
            self._done = True
        self.tape._forget(self)

    def finish(self) -> None:
        """The body ended or was closed: save the exchange (once)."""
        with self._lock:
            if self._done:
                return
            self._done = True
            if self._head is None:  # no response head: nothing to replay
                self.tape._forget(self)
                return
            if self._decoder is not None and self._error is None:
                with contextlib.suppress(Exception):
                    tail = self._decoder.flush()
                    if tail:
                        self._chunks.append(tail)
                        self._times.append(time.perf_counter())
        head = self._head if self._head is not None else self._sent
        response: dict[str, Any] = {"status": self._status, "headers": self._headers}
        if self._decoded:
            response["decoded"] = self._decoded
        if self._streamed:
            response["chunks"] = [encode_bytes(chunk) for chunk in self._chunks]
            response["chunk_ms"] = [round((t - head) * 1000, 3) for t in self._times]
        else:
            response.update(body_of(b"".join(self._chunks)))
        if self._error is not None:
            response["error"] = self._error
        exchange = {
            "id": uuid.uuid4().hex[:12],
            "request": self.request,
            "response": response,
            "head_ms": round((head - self._sent) * 1000, 3),
        }
        self.tape._save(self, exchange)


class Cassette:
    """A cassette in use. Build it with :func:`cassette` (or ``TRACER_CASSETTE``); its
    counters say what it did: ``replayed`` and ``recorded`` exchanges.

    ``ignore_fields`` (dotted paths into the request body, ``*`` for any key or index) and
    ``ignore_patterns`` (regular expressions searched in the body's strings) are left out when
    requests are compared. ``pace=True`` replays each stream's chunks at their recorded times
    (and the response head after its recorded wait).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: RecordMode | str = "once",
        *,
        ignore_fields: Iterable[str] = (),
        ignore_patterns: Iterable[str] = (),
        pace: bool = False,
    ) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(f"unknown record mode {mode!r}; one of {', '.join(RECORD_MODES)}")
        self.path = Path(path)
        self.mode: str = mode
        self.ignore = Ignore.of(ignore_fields, ignore_patterns)
        self.pace = pace
        self.replayed = 0
        self.recorded = 0
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._open: set[Recording] = set()
        if mode == "all":
            try:
                existing = load(self.path)
            except CassetteError:
                existing = None  # replaced whole by the first exchange recorded
            self._drop = frozenset(str(e.get("id")) for e in existing or [])
            self._entries: list[dict[str, Any]] = []
        else:
            existing = load(self.path)
            self._drop = frozenset()
            self._entries = existing or []
        self.existed = existing is not None
        self._replays = mode in ("none", "new_episodes") or (mode == "once" and self.existed)
        self._records = mode in ("all", "new_episodes") or (mode == "once" and not self.existed)
        self._keys = [comparable(e["request"], self.ignore) for e in self._entries]
        self._used = [False] * len(self._entries)

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r})"

    def take(
        self,
        method: str,
        url: str,
        headers: Any,
        body: bytes | None,
        redact_hook: Callable[[Any, str], Any] | None = None,
    ) -> dict[str, Any] | Recording:
        """The recorded exchange that answers this request (a dict), or a :class:`Recording`
        to fill from the network; raises :class:`CassetteMiss` when it may do neither."""
        sent = stored_request(method, url, headers, body, redact_hook)
        key = comparable(sent, self.ignore)
        with self._lock:
            if self._replays:
                for index, recorded in enumerate(self._keys):
                    if not self._used[index] and recorded == key:
                        self._used[index] = True
                        self.replayed += 1
                        return self._entries[index]
            if not self._records:
                raise CassetteMiss(self._miss(sent, key))
            recording = Recording(self, sent)
            self._open.add(recording)
            return recording

    def cannot_take(self, client: str, method: str, url: str) -> None:
        """An LLM call through a client cassettes cannot answer (``client``, e.g. an aiohttp
        session): a :class:`CassetteMiss` where the cassette only replays, so that nothing
        goes to the network unseen; else one warning, and the call goes out unrecorded."""
        where = f"{method} {redact.safe_url(url)}"
        if not self._records:
            raise CassetteMiss(
                f"{where} was sent through {client}, which cassette {self.path} (record mode "
                f"{self.mode!r}) cannot answer: only httpx and httpx2 clients are replayed. "
                "Give the SDK an httpx client (most take one: http_client=, httpx_client=)"
            )
        warn_once(
            ("cassette", client),
            "tracer: %s goes through %s, which cassettes do not record; it is sent, unrecorded",
            where,
            client,
        )

    def _miss(self, sent: dict[str, Any], key: dict[str, Any]) -> str:
        lines = [
            f"no exchange in cassette {self.path} (record mode {self.mode!r}) answers",
            f"  {describe(sent)}",
        ]
        if not self.existed:
            lines.append("the cassette does not exist: record it with record mode 'once'")
            return "\n".join(lines)
        same = sum(recorded == key for recorded in self._keys)
        if same:
            lines.append(
                f"it was recorded {same} time(s), and each was replayed already in this session: "
                "record the extra call with record mode 'new_episodes'"
            )
            return "\n".join(lines)
        found = closest(key, self._keys)
        if found is None:
            lines.append("the cassette holds no exchange")
        else:
            index, diff = found
            lines.append(f"closest recorded (exchange {index + 1}):")
            lines.append(f"  {describe(self._entries[index]['request'])}")
            lines.append("which differs in:")
            lines.extend(f"  {line}" for line in diff)
        lines.append(
            "ignore fields that change from run to run with ignore_fields/ignore_patterns, or "
            "record again with record mode 'new_episodes' or 'all'"
        )
        return "\n".join(lines)

    def _save(self, recording: Recording, exchange: dict[str, Any]) -> None:
        with self._save_lock:
            save(self.path, [exchange], self._drop)
            with self._lock:
                self.recorded += 1
                self._open.discard(recording)

    def _forget(self, recording: Recording) -> None:
        with self._lock:
            self._open.discard(recording)

    def close(self) -> None:
        """Save what arrived of the exchanges still being read (a stream never closed)."""
        with self._lock:
            pending = list(self._open)
        for recording in pending:
            recording.finish()


_stack: list[Cassette] = []
_stack_lock = threading.Lock()
_env_cassette: tuple[tuple[str, str], Cassette] | None = None


def _env_mode() -> str:
    return (os.environ.get("TRACER_RECORD_MODE") or "once").strip().lower()


def wanted() -> bool:
    """Whether a cassette may be in use (a block is open, or ``TRACER_CASSETTE`` is set):
    the cheap check made for every request."""
    return bool(_stack) or bool(os.environ.get("TRACER_CASSETTE"))


def current() -> Cassette | None:
    """The cassette the process's LLM calls go through now: the innermost :func:`cassette`
    block, else the one ``TRACER_CASSETTE`` names; ``None`` when there is none."""
    global _env_cassette
    if _stack:
        with contextlib.suppress(IndexError):
            return _stack[-1]
    path = os.environ.get("TRACER_CASSETTE")
    if not path:
        return None
    wanted = (path, _env_mode())
    with _stack_lock:
        if _env_cassette is None or _env_cassette[0] != wanted:
            _env_cassette = (wanted, Cassette(path, wanted[1]))
        return _env_cassette[1]


@contextlib.contextmanager
def cassette(
    path: str | os.PathLike[str],
    mode: RecordMode | str | None = None,
    *,
    ignore_fields: Iterable[str] = (),
    ignore_patterns: Iterable[str] = (),
    pace: bool = False,
) -> Iterator[Cassette]:
    """Answer the LLM calls of every traced or instrumented client of the process from the
    cassette at ``path``, or record them into it, for the block's duration.

    ``mode`` defaults to ``TRACER_RECORD_MODE``, else ``once``. A cassette that cannot be read
    raises :class:`CassetteError` here, before any call; a request it cannot answer raises
    :class:`CassetteMiss` from the call. The other arguments are :class:`Cassette`'s.
    """
    tape = Cassette(
        path,
        mode or _env_mode(),
        ignore_fields=ignore_fields,
        ignore_patterns=ignore_patterns,
        pace=pace,
    )
    with _stack_lock:
        _stack.append(tape)
    try:
        yield tape
    finally:
        with _stack_lock:
            _stack.remove(tape)
        tape.close()
