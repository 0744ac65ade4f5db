"""A tiny loopback HTTP server that answers with exactly the bytes a test scripts.

Stdlib only. Each connection gets one response: the server reads the whole request (headers,
then the body by ``Content-Length`` or chunked encoding), records it, then writes the scripted
pieces one ``send`` at a time with a small pause between them (so the client sees those network
chunks), and closes the connection — gracefully (FIN), abruptly (RST), or not at all until the
client hangs up (for timeouts)::

    with RawServer() as server:
        server.respond([b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n", b"{}"])
        httpx.post(server.url + "/v1/chat/completions", json={})
        server.requests[-1].body  # b"{}"

The script set by :meth:`RawServer.respond` answers every following connection until the next
call, so a test can send the same request twice (traced and untraced) against one script.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["RawRequest", "RawServer", "Script", "chunk", "head"]

# The client hung up first (it had read all it wanted): part of some scripts, not an error.
_CLIENT_HUNG_UP = {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN}


def head(
    status: int = 200, reason: str = "", headers: list[tuple[str, str]] | None = None
) -> bytes:
    """A status line and headers ending with the blank line; always ``Connection: close``."""
    reason = reason or {200: "OK", 204: "No Content"}.get(status, "Whatever")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk (``b""`` gives the last, empty chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass(frozen=True)
class Script:
    """What to answer: the raw pieces, the pause between them, and how to end."""

    pieces: list[bytes]
    pause: float = 0.003
    close: str = "close"
    """``close``: FIN after the last piece; ``abort``: RST (after ``abort_delay``, so the
    client has read what was sent); ``wait``: keep the connection until the client closes."""
    abort_delay: float = 0.1


@dataclass
class RawRequest:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawServer:
    """A context manager serving scripted raw responses on ``127.0.0.1`` (a free port)."""

    script: Script = field(default_factory=lambda: Script([]))
    requests: list[RawRequest] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    """What went wrong serving since the last :meth:`respond` (the client hanging up early
    is not counted)."""

    def __post_init__(self) -> None:
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._listener is not None, "use RawServer as a context manager"
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def respond(
        self,
        pieces: list[bytes],
        *,
        pause: float = 0.003,
        close: str = "close",
        abort_delay: float = 0.1,
    ) -> None:
        """Answer every following connection with ``pieces`` (see :class:`Script`)."""
        if close not in ("close", "abort", "wait"):
            raise ValueError(f"close must be 'close', 'abort' or 'wait', not {close!r}")
        self.script = Script(list(pieces), pause, close, abort_delay)
        self.errors.clear()

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> RawServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="rawserver", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for worker in self._workers:
            worker.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn, self.script), daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
            worker.start()

    # --- one connection ------------------------------------------------------------------

    def _serve(self, conn: socket.socket, script: Script) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(10)
            self.requests.append(_read_request(conn))
            for i, piece in enumerate(script.pieces):
                if i:
                    time.sleep(script.pause)
                conn.sendall(piece)
            if script.close == "abort":
                time.sleep(script.abort_delay)
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif script.close == "wait":
                while not self._stopping.is_set():
                    try:
                        if not conn.recv(65536):
                            break
                    except TimeoutError:
                        continue
            else:
                conn.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno not in _CLIENT_HUNG_UP:
                self.errors.append(exc)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            conn.close()


class _Reader:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def _more(self) -> None:
        data = self.conn.recv(65536)
        if not data:
            raise ConnectionError("client closed before sending a whole request")
        self.buffer += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._more()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found


def _read_request(conn: socket.socket) -> RawRequest:
    reader = _Reader(conn)
    request_line, *lines = reader.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(reader.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n")  # no trailers expected: the final CRLF
                break
            body += reader.exactly(size)
            reader.exactly(2)
    else:
        body = reader.exactly(int(headers.get("content-length", "0")))
    return RawRequest(method, path, headers, body)
