"""What must never be recorded: credentials in headers and URLs.

The tracer records no request or response headers except the few named in
:data:`RECORDED_REQUEST_HEADERS` / :data:`RECORDED_RESPONSE_HEADERS`, so ``Authorization``,
``api-key``, ``x-api-key`` and cookies never reach a span. URLs lose their user-info, and query
parameters that carry keys are replaced by ``REDACTED``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MEDIA_MIN_CHARS",
    "RECORDED_REQUEST_HEADERS",
    "RECORDED_RESPONSE_HEADERS",
    "REDACTED",
    "media_placeholder",
    "omit_media",
    "safe_url",
]

REDACTED = "REDACTED"

#: Query parameters whose values are credentials (compared case-insensitively, with "-"
#: and "_" treated alike).
SECRET_QUERY_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "code",
        "token",
        "access_token",
        "auth",
        "sig",
        "signature",
        "secret",
        "password",
        "client_secret",
        "x_api_key",
    }
)

#: Request headers recorded as ``http.request.header.<name>`` (lower-case); nothing else is.
RECORDED_REQUEST_HEADERS = ("idempotency-key",)
#: Response headers recorded as ``http.response.header.<name>``: the server's request ids.
RECORDED_RESPONSE_HEADERS = (
    "x-request-id",
    "request-id",
    "apim-request-id",
    "x-ms-request-id",
    "x-databricks-request-id",
)


def _is_secret(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_QUERY_PARAMS


def safe_url(url: str) -> str:
    """Return ``url`` without user-info and with credential query values replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(name) for name, _ in pairs):
            query = urlencode(
                [(name, REDACTED if _is_secret(name) else value) for name, value in pairs]
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: Inline media shorter than this (characters of base64) is kept as sent.
MEDIA_MIN_CHARS = 1024
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


def media_placeholder(media_type: str, encoded_chars: int) -> str:
    """What is recorded in place of ``encoded_chars`` characters of base64 media of
    ``media_type``: ``[image/png omitted: 102400 bytes as base64]``."""
    return f"[{media_type} omitted: {encoded_chars * 3 // 4} bytes as base64]"


def omit_media(value: Any) -> Any:
    """``value`` with inline base64 media replaced by a short placeholder naming its media type
    and size: ``data:<type>;base64,...`` URLs (OpenAI image and file parts) and
    ``{"data": <base64>}`` objects (Anthropic ``source``, OpenAI ``input_audio``).

    Returns ``value`` itself when there is nothing to replace (no copy is made).
    """
    if isinstance(value, str):
        if len(value) >= MEDIA_MIN_CHARS and value.startswith("data:"):
            header, sep, payload = value.partition(";base64,")
            if sep:
                return media_placeholder(header[5:] or "data", len(payload))
        return value
    if isinstance(value, list):
        items = [omit_media(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        changed = {}
        for key, item in value.items():
            if (
                key == "data"
                and isinstance(item, str)
                and len(item) >= MEDIA_MIN_CHARS
                and _BASE64.fullmatch(item[:4096])
            ):
                kind = value.get("media_type") or value.get("format") or "media"
                changed[key] = media_placeholder(str(kind), len(item))
            else:
                new = omit_media(item)
                if new is not item:
                    changed[key] = new
        return {**value, **changed} if changed else value
    return value
