"""Incremental stream decoders: bytes in arbitrary pieces in, events out. Server-Sent Events
(:class:`SSEDecoder`), and newline-delimited JSON (:class:`NDJSONDecoder`) likewise.

Follows https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation:
lines end with CRLF, LF or CR; a CR that ends one network chunk may be the first half of a
CRLF whose LF starts the next; one leading byte order mark is ignored. Lines are decoded from
UTF-8 only once complete, so a multi-byte character split across chunks survives. No I/O: feed
bytes, get events.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NDJSONDecoder", "SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``""`` when the stream gave none), data and last id."""

    event: str
    data: str
    id: str | None = None


class _Lines:
    """The line being read, bounded: past ``max_line_bytes`` it is dropped, not buffered, and
    counted in :attr:`oversized_lines` (what both decoders share)."""

    __slots__ = ("_line_bytes", "_partial", "_skipping", "max_line_bytes", "oversized_lines")

    def __init__(self, max_line_bytes: int | None) -> None:
        self.max_line_bytes = max_line_bytes
        self.oversized_lines = 0
        self._partial = bytearray()  # the line not yet terminated
        self._line_bytes = 0
        self._skipping = False  # inside an oversized line: discard until its end

    def _hold(self, piece: bytes) -> None:
        if self._skipping:
            return
        self._line_bytes += len(piece)
        if self.max_line_bytes is not None and self._line_bytes > self.max_line_bytes:
            self._partial.clear()
            self._skipping = True
            self.oversized_lines += 1
            return
        self._partial += piece


class SSEDecoder(_Lines):
    """Turns a byte stream into :class:`SSEEvent` objects, one ``feed`` at a time.

    ``max_line_bytes`` bounds the memory a single line may hold; a longer line is dropped and
    counted in :attr:`oversized_lines` instead of being buffered.
    """

    #: How bytes that complete an event end (a blank line; CR, LF and CRLF, mixed): a chunk
    #: ending otherwise may hold the start of an event the next chunk finishes.
    EVENT_ENDS: tuple[bytes, ...] = (b"\n\n", b"\r\r", b"\n\r\n", b"\r\n\n")

    __slots__ = (
        "_after_cr",
        "_bom",
        "_data",
        "_data_size",
        "_event",
        "_last_id",
        "invalid_utf8_lines",
        "oversized_events",
    )

    def __init__(self, max_line_bytes: int | None = None) -> None:
        super().__init__(max_line_bytes)
        self.oversized_events = 0
        self.invalid_utf8_lines = 0
        self._after_cr = False  # the previous chunk ended with CR
        self._bom: bytes | None = b""  # the stream's first bytes, until a BOM is ruled out
        self._data: list[str] = []
        self._data_size: int | None = 0  # None: this event outgrew the limit, drop it
        self._event = ""
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed (often none or one)."""
        if self._bom is not None:  # one leading BOM is ignored, also when split across chunks
            chunk = self._bom + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._bom = chunk
                return []
            self._bom = None
            chunk = chunk.removeprefix(_BOM)
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
            self._after_cr = False
        if not chunk:
            return []
        self._after_cr = chunk[-1:] == b"\r"
        lines = chunk.splitlines()  # bytes.splitlines splits on exactly CR, LF and CRLF
        terminated = chunk[-1:] in (b"\n", b"\r")
        tail = b"" if terminated else lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            if self._partial or self._skipping:
                joined = self._join(line)
                if joined is None:
                    continue
                line = joined
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        if tail:
            self._hold(tail)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: an unterminated last line is processed; an unfinished event is not
        dispatched (the spec drops it), but is returned when it carries data, since a server
        that forgets the final blank line still sent it."""
        events: list[SSEEvent] = []
        if self._bom:  # the stream ended inside what could have been a BOM
            self._hold(self._bom)
        self._bom = None
        if self._partial or self._skipping:
            line = self._join(b"")
            if line:
                event = self._process_line(line)
                if event is not None:
                    events.append(event)
        if self._data:
            events.append(self._dispatch_pending())
        return events

    def _join(self, end: bytes) -> bytes | None:
        """Complete a held line with ``end``; ``None`` if the line was oversized."""
        self._hold(end)
        line = None if self._skipping else bytes(self._partial)
        self._partial.clear()
        self._line_bytes = 0
        self._skipping = False
        return line

    def _process_line(self, raw: bytes) -> SSEEvent | None:
        if self.max_line_bytes is not None and len(raw) > self.max_line_bytes:
            self.oversized_lines += 1
            return None
        if not raw:
            if self._data:
                return self._dispatch_pending()
            self._reset()
            return None
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.invalid_utf8_lines += 1
            line = raw.decode("utf-8", errors="replace")
        if line[0] == ":":
            return None  # comment
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            if self._data_size is None:
                return None
            self._data_size += len(value)
            if self.max_line_bytes is not None and self._data_size > self.max_line_bytes:
                self._data, self._data_size = [], None
                self.oversized_events += 1
                return None
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        # "retry" and unknown fields carry nothing the tracer records.
        return None

    def _dispatch_pending(self) -> SSEEvent:
        event = SSEEvent(self._event, "\n".join(self._data), self._last_id)
        self._data = []
        self._data_size = 0
        self._event = ""
        return event

    def _reset(self) -> None:
        self._event = ""
        self._data_size = 0


class NDJSONDecoder(_Lines):
    """Turns a newline-delimited JSON stream (``application/x-ndjson``, Ollama's) into one
    :class:`SSEEvent` per non-blank line, its ``data`` the line, one ``feed`` at a time.

    Lines end with LF (a CR before it is dropped). ``max_line_bytes`` bounds the memory a
    single line may hold: a longer line is dropped and counted in :attr:`oversized_lines`. An
    unterminated last line is returned by :meth:`flush`.
    """

    #: See :attr:`SSEDecoder.EVENT_ENDS`: a line is an event.
    EVENT_ENDS: tuple[bytes, ...] = (b"\n",)

    __slots__ = ("invalid_utf8_lines", "oversized_events")

    def __init__(self, max_line_bytes: int | None = None) -> None:
        super().__init__(max_line_bytes)
        self.oversized_events = 0  # one line is one event: counted as lines
        self.invalid_utf8_lines = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the lines it completed."""
        events: list[SSEEvent] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._hold(chunk[start:end])
            start = end + 1
            event = self._end_line()
            if event is not None:
                events.append(event)
        if start < len(chunk):
            self._hold(chunk[start:])
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: the unterminated last line, if any."""
        event = self._end_line()
        return [event] if event is not None else []

    def _end_line(self) -> SSEEvent | None:
        raw = bytes(self._partial).rstrip(b"\r")
        self._partial.clear()
        self._line_bytes = 0
        self._skipping = False
        if not raw.strip():
            return None
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.invalid_utf8_lines += 1
            line = raw.decode("utf-8", errors="replace")
        return SSEEvent("", line)
