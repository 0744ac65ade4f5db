"""A cassette on disk: one JSON document, indented, one exchange per entry.

The file is meant to be read, diffed and committed::

    {
      "format": "llm-tracer-cassette",
      "version": 1,
      "exchanges": [
        {
          "id": "3f9c0e1a2b4d",
          "request": {"method": "POST", "url": "http://127.0.0.1:8000/v1/chat/completions",
                      "headers": {"content-type": "application/json"}, "json": {...}},
          "response": {"status": 200, "headers": {...}, "json": {...}, "layout": "spaced"},
          "head_ms": 3.1
        },
        {..., "response": {"status": 200, "headers": {...},
                           "chunks": ["data: {...}\\n\\n", ...], "chunk_ms": [0.4, ...]}}
      ]
    }

A response body is kept as ``json`` (with the ``layout`` that gives its exact bytes back), as
``text``, or as ``base64`` (audio, images); a stream as its ``chunks``, each text or
``{"base64": ...}``, in the order and with the boundaries they arrived, decoded from any
``Content-Encoding`` (the bytes the SDK read). Writes replace the file atomically, under a
lock on its directory where the platform has one, after reading it again, so that two
processes recording into one cassette both keep their exchanges and no reader sees half a file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: writes are still atomic, only not serialised between processes
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "LAYOUTS",
    "VERSION",
    "CassetteError",
    "body_of",
    "decode_bytes",
    "encode_bytes",
    "load",
    "save",
]

FORMAT = "llm-tracer-cassette"
VERSION = 1
#: How long a write waits for another process's write to the same directory, at most.
LOCK_SECONDS = 10.0

#: JSON layouts a server's body may have; the one that reproduces it byte for byte is kept.
LAYOUTS: dict[str, dict[str, Any]] = {
    "compact": {"separators": (",", ":"), "ensure_ascii": False},
    "spaced": {"ensure_ascii": False},
    "ascii": {},
    "indented": {"indent": 2, "ensure_ascii": False},
}


class CassetteError(Exception):
    """A cassette cannot be read or used: it is not valid JSON, not a cassette, of a format
    version this tracer does not read, or an entry lacks what a replay needs. The message
    names the file and, where it can, the line."""


def encode_bytes(data: bytes) -> str | dict[str, str]:
    """A chunk or body as a cassette keeps it: text when it is UTF-8, else base64."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: Any) -> bytes:
    """The bytes :func:`encode_bytes` kept; ``ValueError`` for anything else."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"], validate=True)
    raise ValueError(f"expected text or {{'base64': ...}}, found {str(value)[:60]}")


def body_of(data: bytes) -> dict[str, Any]:
    """A whole (non-streamed) body as a cassette keeps it."""
    if not data:
        return {"text": ""}
    kept = encode_bytes(data)
    if isinstance(kept, dict):
        return kept
    text = kept
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"text": text}
    if isinstance(parsed, (dict, list)):
        core, newline = (text[:-1], True) if text.endswith("\n") else (text, False)
        for name, layout in LAYOUTS.items():
            if json.dumps(parsed, **layout) == core:
                return {"json": parsed, "layout": name, **({"newline": True} if newline else {})}
    return {"text": text}


def bytes_of(response: dict[str, Any]) -> bytes:
    """The exact bytes of a body kept by :func:`body_of`."""
    if "json" in response:
        layout = LAYOUTS.get(response.get("layout", "spaced"), LAYOUTS["spaced"])
        text = json.dumps(response["json"], **layout) + ("\n" if response.get("newline") else "")
        return text.encode("utf-8")
    if "base64" in response:
        return decode_bytes({"base64": response["base64"]})
    return str(response.get("text", "")).encode("utf-8")


def _line_of_entry(text: str, index: int) -> int | None:
    """The line where the ``index``-th exchange's ``"request"`` key is, if it can be found."""
    found = [m.start() for m in re.finditer(r'"request"\s*:', text)]
    if index < len(found):
        return text.count("\n", 0, found[index]) + 1
    return None


def _check_entry(entry: Any, index: int, text: str, path: Path) -> None:
    def fail(what: str) -> None:
        line = _line_of_entry(text, index)
        where = f"{path}:{line}" if line else str(path)
        raise CassetteError(f"{where}: exchange {index + 1} {what}")

    if not isinstance(entry, dict):
        fail("is not an object")
    request, response = entry.get("request"), entry.get("response")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        fail('has no "request" with a "method"')
    if not isinstance(request.get("url"), str):
        fail('has no request "url"')
    if not isinstance(response, dict) or not isinstance(response.get("status"), int):
        fail('has no "response" with a whole-number "status"')
    if "chunks" in response and not isinstance(response["chunks"], list):
        fail('has "chunks" that are not a list')
    if not isinstance(response.get("headers", {}), dict):
        fail('has response "headers" that are not an object')


def parse(text: str, path: Path) -> list[dict[str, Any]]:
    """The exchanges of a cassette's text; :class:`CassetteError` naming the line otherwise."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CassetteError(
            f"{path}:{exc.lineno}:{exc.colno}: not a valid cassette ({exc.msg}); fix the line "
            "or delete the file to record it again"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CassetteError(f'{path}: not an llm-tracer cassette (no "format": "{FORMAT}")')
    version = document.get("version")
    if not isinstance(version, int) or version < 1:
        raise CassetteError(
            f"{path}: cassette format version {version!r} is not one this tracer reads "
            f"(it reads version {VERSION}); delete the file to record it again"
        )
    if version > VERSION:
        raise CassetteError(
            f"{path}: cassette format version {version} was written by a newer llm-tracer "
            f"(this one reads version {VERSION}); upgrade llm-wire-tracer"
        )
    exchanges = document.get("exchanges")
    if not isinstance(exchanges, list):
        raise CassetteError(f'{path}: the cassette has no "exchanges" list')
    for index, entry in enumerate(exchanges):
        _check_entry(entry, index, text, path)
    return exchanges


def load(path: Path) -> list[dict[str, Any]] | None:
    """The exchanges of the cassette at ``path``; ``None`` when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot be read ({exc})") from None
    return parse(text, path)


def dumps(exchanges: list[dict[str, Any]]) -> str:
    """A cassette's text."""
    document = {"format": FORMAT, "version": VERSION, "exchanges": exchanges}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` for at most :data:`LOCK_SECONDS` of waiting;
    past that, go on without it (the write stays atomic)."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_SECONDS
        locked = False
        while not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def save(path: Path, new: list[dict[str, Any]], drop: frozenset[str] = frozenset()) -> None:
    """Add the exchanges ``new`` to the cassette at ``path``, leaving out those whose id is in
    ``drop`` (and any already there with the id of a new one); atomic, under the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        try:
            kept = load(path) or []
        except CassetteError:
            kept = []  # a broken file being re-recorded (mode "all") is replaced
        ids = {entry.get("id") for entry in new}
        kept = [e for e in kept if e.get("id") not in drop and e.get("id") not in ids]
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(dumps([*kept, *new]))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
