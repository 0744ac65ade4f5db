"""How a request is written into a cassette and compared with the ones recorded there.

A request is matched by its method, its URL (scheme, host, port, path and query, credentials
masked) and its body: a JSON body as JSON (key order ignored), a ``multipart/form-data`` upload
by its fields and each file's name, media type, size and SHA-256, any other body by its text or
digest. Fields that change from run to run are left out of the comparison by
:class:`Ignore`: dotted paths into the body (``user``, ``metadata.sent_at``,
``messages.*.content``; ``*`` is any key or list index) and regular expressions whose matches
in any string of the body are ignored (a timestamp inside a prompt).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tracer import multipart, redact

__all__ = ["Ignore", "closest", "describe", "differences", "stored_request"]

#: How a string's ignored part reads once replaced, on both sides of a comparison.
_IGNORED = "<ignored>"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Request headers kept in a cassette, for the reader: none of them is a credential or matched.
STORED_REQUEST_HEADERS = ("content-type", "accept", "openai-beta", "anthropic-version")


@dataclass(frozen=True)
class Ignore:
    """What a comparison leaves out: body ``fields`` (dotted paths, ``*`` for any key or list
    index) and ``patterns`` (regular expressions, searched in every string of the body)."""

    fields: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = field(default=())

    @classmethod
    def of(
        cls, fields: Iterable[str] = (), patterns: Iterable[str | re.Pattern[str]] = ()
    ) -> Ignore:
        """Build from strings; a pattern that is not a valid regular expression raises
        ``ValueError`` naming it."""
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(
                    f"ignore pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        return cls(tuple(fields), tuple(compiled))

    def __add__(self, other: Ignore) -> Ignore:
        return Ignore(self.fields + other.fields, self.patterns + other.patterns)

    def apply(self, value: Any) -> Any:
        """``value`` with the ignored fields removed and ignored text replaced."""
        for path in self.fields:
            value = _without(value, path.split("."))
        if self.patterns:
            value = _replace_text(value, self.patterns)
        return value


def _without(value: Any, path: list[str]) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
        if not rest:
            return {k: v for k, v in value.items() if k not in keys}
        return {k: (_without(v, rest) if k in keys else v) for k, v in value.items()}
    if isinstance(value, list):
        if head == "*":
            indexes = range(len(value))
        elif head.isdigit() and int(head) < len(value):
            indexes = range(int(head), int(head) + 1)
        else:
            return value
        if not rest:
            return [v for i, v in enumerate(value) if i not in indexes]
        return [(_without(v, rest) if i in indexes else v) for i, v in enumerate(value)]
    return value


def _replace_text(value: Any, patterns: tuple[re.Pattern[str], ...]) -> Any:
    if isinstance(value, str):
        for pattern in patterns:
            value = pattern.sub(_IGNORED, value)
        return value
    if isinstance(value, list):
        return [_replace_text(v, patterns) for v in value]
    if isinstance(value, dict):
        return {k: _replace_text(v, patterns) for k, v in value.items()}
    return value


def _request_body(
    content_type: str, body: bytes | None, redact_hook: Callable[[Any, str], Any] | None
) -> dict[str, Any]:
    """The body as a cassette keeps it: ``{"json": ...}``, ``{"form": ...}``, ``{"text": ...}``
    or ``{"sha256": ..., "size": ...}`` (binary), credentials masked as in spans."""
    if not body:
        return {}
    if "multipart/form-data" in content_type.lower():
        form = multipart.form_of_body(content_type, body, digest=True)
        if form is not None:
            return {"form": redact.scrub(form, media=False)}
    try:
        parsed = json.loads(body)
    except ValueError:
        try:
            return {"text": redact.mask_urls(body.decode("utf-8"))}
        except UnicodeDecodeError:
            return {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
    parsed = redact.scrub(parsed, media=False)
    if redact_hook is not None:
        # The same rewrite as the span's inputs; one that fails keeps nothing of the body
        # (the request is then matched without it), as a span records nothing of it.
        try:
            parsed = redact_hook(parsed, "inputs")
        except Exception:
            return {"json": None, "redact_failed": True}
    return {"json": parsed}


def stored_request(
    method: str,
    url: str,
    headers: Any,
    body: bytes | None,
    redact_hook: Callable[[Any, str], Any] | None = None,
) -> dict[str, Any]:
    """The request as a cassette writes it and compares it: no credential, whatever the
    headers, URL or body held (the same rules as spans, the ``redact`` hook included)."""
    content_type = headers.get("content-type") or ""
    kept = {name: headers.get(name) for name in STORED_REQUEST_HEADERS if headers.get(name)}
    return {
        "method": method.upper(),
        "url": redact.safe_url(url),
        "headers": kept,
        **_request_body(content_type, body, redact_hook),
    }


def _url_key(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port if parts.port not in (None, _DEFAULT_PORTS.get(scheme)) else None
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    return {
        "scheme": scheme,
        "host": (parts.hostname or "").lower(),
        "port": port,
        "path": parts.path or "/",
        "query": query,
    }


def comparable(request: dict[str, Any], ignore: Ignore) -> dict[str, Any]:
    """What of ``request`` (as :func:`stored_request` gives it) is compared.

    Ignored fields that start with ``url.`` name a part of the URL (``url.port``, ``url.host``,
    ``url.query.<name>``); the others are paths into the body.
    """
    for kind in ("json", "form", "text"):
        if kind in request:
            body = request[kind]
            break
    else:
        body = {k: request[k] for k in ("sha256", "size") if k in request} or None
    url = _url_key(str(request.get("url", "")))
    url_fields = tuple(f[len("url.") :] for f in ignore.fields if f.startswith("url."))
    body_fields = tuple(f for f in ignore.fields if not f.startswith("url."))
    return {
        "method": request.get("method"),
        "url": Ignore(url_fields).apply(url),
        "body": Ignore(body_fields, ignore.patterns).apply(body),
    }


def differences(recorded: Any, sent: Any, path: str = "", limit: int = 5) -> list[str]:
    """Where ``sent`` differs from ``recorded``, as ``path: recorded X, sent Y`` lines (at most
    ``limit``)."""
    found: list[str] = []
    _diff(recorded, sent, path, found, limit)
    return found


def _short(value: Any, size: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= size else text[: size - 1] + "…"


def _diff(recorded: Any, sent: Any, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit or recorded == sent:
        return
    if isinstance(recorded, dict) and isinstance(sent, dict):
        for key in [*recorded, *(k for k in sent if k not in recorded)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in sent:
                found.append(f"{where}: recorded {_short(recorded[key])}, not sent")
            elif key not in recorded:
                found.append(f"{where}: sent {_short(sent[key])}, not recorded")
            else:
                _diff(recorded[key], sent[key], where, found, limit)
            if len(found) >= limit:
                return
        return
    if isinstance(recorded, list) and isinstance(sent, list) and len(recorded) == len(sent):
        for index, (a, b) in enumerate(zip(recorded, sent, strict=True)):
            _diff(a, b, f"{path}[{index}]", found, limit)
        return
    found.append(f"{path or 'the request'}: recorded {_short(recorded)}, sent {_short(sent)}")


def closest(sent: dict[str, Any], candidates: list[dict[str, Any]]) -> tuple[int, list[str]] | None:
    """The index of the recorded request (each as :func:`comparable` gives it) nearest to
    ``sent``, with where they differ; ``None`` when there is none."""
    best: tuple[int, int, list[str]] | None = None
    for index, recorded in enumerate(candidates):
        diff = differences(recorded, sent, limit=50)
        weight = len(diff)
        weight += 1000 * (recorded["method"] != sent["method"])
        weight += 100 * (recorded["url"].get("path") != sent["url"].get("path"))
        weight += 100 * (recorded["url"].get("host") != sent["url"].get("host"))
        if best is None or weight < best[0]:
            best = (weight, index, diff[:5])
    return None if best is None else (best[1], best[2])


def describe(request: dict[str, Any], size: int = 120) -> str:
    """``POST /v1/chat/completions {"model": ...`` : a request in one line, for a message."""
    parts = urlsplit(str(request.get("url", "")))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if "json" in request:
        body = json.dumps(request["json"], ensure_ascii=False)
    elif "form" in request:
        body = "form " + json.dumps(request["form"], ensure_ascii=False)
    elif "text" in request:
        body = str(request["text"])
    elif "sha256" in request:
        body = f"<{request.get('size')} bytes, sha256 {request['sha256'][:12]}…>"
    else:
        body = ""
    if len(body) > size:
        body = body[: size - 1] + "…"
    return f"{request.get('method')} {target} {body}".rstrip()
