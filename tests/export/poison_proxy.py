"""Run by test_backend_failure.py: a proxy in front of a tracking server that answers HTTP
``STATUS`` (500 by default, with MLflow's error document) to every request to a path starting
with ``PATH`` (any by default) whose body holds a marker, and forwards the rest, each write (a
POST) after ``DELAY`` seconds. One trace (or one trace's spans) the store cannot take, the
others healthy; or a server far away. ``GET /proxy-stats`` answers how many writes it has seen
at once, at most.

Usage: poison_proxy.py UPSTREAM_URL MARKER [DELAY [STATUS [PATH]]]  (prints its own URL, then
serves until killed)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

UPSTREAM, MARKER = sys.argv[1], sys.argv[2].encode()
DELAY = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
STATUS = int(sys.argv[4]) if len(sys.argv) > 4 else 500
PATH = sys.argv[5] if len(sys.argv) > 5 else "/"
HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}
upstream = httpx.Client(base_url=UPSTREAM, timeout=60, limits=httpx.Limits(max_connections=64))
writes = {"now": 0, "most": 0}
lock = threading.Lock()


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" not in (self.headers.get("transfer-encoding") or "").lower():
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return body

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        if self.path == "/proxy-stats":
            self._reply(200, [("Content-Type", "application/json")], json.dumps(writes).encode())
            return
        body = self._body()
        if self.command == "POST":
            with lock:
                writes["now"] += 1
                writes["most"] = max(writes["most"], writes["now"])
            try:
                time.sleep(DELAY)
                self._answer(body)
            finally:
                with lock:
                    writes["now"] -= 1
        else:
            self._answer(body)

    def _answer(self, body: bytes) -> None:
        if MARKER in body and self.path.startswith(PATH):
            code = "INTERNAL_ERROR" if STATUS >= 500 else "INVALID_PARAMETER_VALUE"
            error = f'{{"error_code": "{code}", "message": "this payload breaks the store"}}'
            self._reply(STATUS, [("Content-Type", "application/json")], error.encode())
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = upstream.request(self.command, self.path, content=body, headers=headers)
        self._reply(answer.status_code, list(answer.headers.items()), answer.content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
