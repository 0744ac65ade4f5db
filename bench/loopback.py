"""A minimal HTTP/1.1 server on 127.0.0.1 for the non-LLM requests of ``make bench``.

Run as ``python bench/loopback.py``: it prints its root URL (``http://127.0.0.1:PORT``) on the
first line and serves until it is terminated. Standard library only, so it starts at once, and
in a process of its own, so that the client measured does not share its interpreter lock.

Every request, whatever its method and path, is answered ``200`` with a small JSON body that
carries the SHA-256 of the request as it arrived (request line, headers, body): two requests
sent with the same bytes get the same answer, byte for byte, and a request changed on its way
(a header added, a body re-encoded) gets a different one. Nothing is recorded: the server
stays the same size however many requests it answers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection for a whole run
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        digest = hashlib.sha256(self.raw_requestline)
        digest.update(self.headers.as_bytes())
        digest.update(body)
        payload = json.dumps(
            {"status": "ok", "request_bytes": len(body), "request_sha256": digest.hexdigest()},
            separators=(",", ":"),
        ).encode()
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "\r\n"
        ).encode("ascii")
        self.wfile.write(head + payload)  # one write: no small-segment delays

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


def main() -> int:
    """Serve on a free port of 127.0.0.1 until terminated."""
    server = _Server(("127.0.0.1", 0), _Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
