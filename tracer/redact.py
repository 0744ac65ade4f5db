"""What must never be recorded: credentials in headers and URLs, and inline media by default.

The tracer records no request or response headers except the few named in
:data:`RECORDED_REQUEST_HEADERS` / :data:`RECORDED_RESPONSE_HEADERS`, so ``Authorization``,
``api-key``, ``x-api-key`` and cookies never reach a span.

Credentials in URLs are found by rule, not by list (:func:`is_secret_param`): a query parameter
whose name suggests a secret (key, token, secret, signature or sig, credential, password, auth,
code — any case, any separator) and every ``X-Amz-*`` / ``X-Goog-*`` signing parameter has its
value replaced by ``REDACTED``, and user-info (``https://user:pass@host``) is removed. This holds
for every URL the span records: the request's, a ``Location`` header, and URLs inside recorded
bodies and error messages (:func:`scrub`, :func:`mask_urls`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "MEDIA_KEYS",
    "MEDIA_MIN_CHARS",
    "RECORDED_REQUEST_HEADERS",
    "RECORDED_RESPONSE_HEADERS",
    "REDACTED",
    "SECRET_FIELDS",
    "decoded_size",
    "is_secret_param",
    "mask_urls",
    "media_placeholder",
    "safe_url",
    "scrub",
    "sniff_media_type",
]

REDACTED = "REDACTED"

#: Request headers recorded as ``http.request.header.<name>`` (lower-case); nothing else is.
RECORDED_REQUEST_HEADERS = ("idempotency-key",)
#: Response headers recorded as ``http.response.header.<name>``: the server's request ids, and
#: where a redirect points (its URL with credentials masked, as every recorded URL).
RECORDED_RESPONSE_HEADERS = (
    "x-request-id",
    "request-id",
    "apim-request-id",
    "x-ms-request-id",
    "x-databricks-request-id",
    "location",
)

# --- credentials in URLs -----------------------------------------------------------------

#: A parameter name that contains one of these (letters and digits only, any case) is a secret:
#: ``api_key``, ``subscription-key``, ``accessToken``, ``client_secret``, ``X-Amz-Signature``.
_SECRET_WORDS = (
    "key",
    "token",
    "secret",
    "signature",
    "credential",
    "password",
    "passwd",
    "auth",
    "jwt",
    "bearer",
)
#: Short names that are secrets only as a whole word (``sig``, Azure Functions' ``code``).
_SECRET_NAMES = frozenset({"sig", "code", "pwd", "pass"})
_SIGNING_PREFIXES = ("xamz", "xgoog")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter called ``name`` (raw or percent-encoded) carries a
    credential, by the rule in this module's docstring."""
    decoded = unquote_plus(name).lower()
    compact = _NOT_ALNUM.sub("", decoded)
    if compact.startswith(_SIGNING_PREFIXES) or any(w in compact for w in _SECRET_WORDS):
        return True
    words = _NOT_ALNUM.split(decoded)
    return compact.endswith("sig") or any(w in _SECRET_NAMES for w in words)


def _mask_pairs(pairs: str) -> str:
    """``a=1&key=2`` with each secret's value replaced; everything else kept byte for byte."""
    if "=" not in pairs:
        return pairs
    out = []
    changed = False
    for segment in pairs.split("&"):
        name, sep, value = segment.partition("=")
        if sep and value != REDACTED and is_secret_param(name):
            segment = f"{name}={REDACTED}"
            changed = True
        out.append(segment)
    return "&".join(out) if changed else pairs


def safe_url(url: str) -> str:
    """``url`` without user-info and with the value of every credential query parameter (and
    fragment parameter) replaced by ``REDACTED``; never raises, whatever the string."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    netloc, tail = rest[:end], rest[end:]
    netloc = netloc.rpartition("@")[2]
    tail, hash_, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    result = f"{scheme}{sep}{netloc}{path}{question}{_mask_pairs(query)}"
    return f"{result}{hash_}{_mask_pairs(fragment)}" if hash_ else result


#: Object fields whose value is a credential wherever they appear in a recorded body (an MCP
#: tool's ``authorization`` or ``headers``, a gateway's ``api_key``), compared in lower case
#: with ``-`` as ``_``.
SECRET_FIELDS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "api_key",
        "apikey",
        "x_api_key",
        "subscription_key",
        "ocp_apim_subscription_key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "bearer_token",
        "private_key",
        "cookie",
        "set_cookie",
    }
)

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>\\`{}|^\[\]]+")


def mask_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`safe_url` (``text`` itself when no
    URL needed masking)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: safe_url(m.group(0)), text)


# --- inline media --------------------------------------------------------------------------

#: Inline base64 shorter than this (characters) is kept as sent, unless it is in a media field.
MEDIA_MIN_CHARS = 1024
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\r\n]*")
#: Fields that always hold media, whatever their size: ``{"data": ...}`` under these parents
#: (OpenAI ``input_audio`` and a chat response's ``audio``, Anthropic ``source``), and these
#: fields anywhere (OpenAI ``file.file_data`` / Responses ``input_file.file_data``, generated
#: images' ``b64_json``).
MEDIA_KEYS = {
    ("input_audio", "data"): "audio",
    ("audio", "data"): "audio",
    ("source", "data"): "application/octet-stream",
    ("*", "file_data"): "application/octet-stream",
    ("*", "b64_json"): "image",
}
_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"PK\x03\x04", "application/zip"),
)
_AUDIO_FORMATS = {"mp3": "audio/mpeg", "pcm16": "audio/pcm", "pcm": "audio/pcm"}


def media_placeholder(media_type: str, encoded: str) -> str:
    """What is recorded in place of the base64 media ``encoded`` of ``media_type``:
    ``[image/png omitted: 102400 bytes as base64]`` (the size decoded, padding not counted)."""
    return f"[{media_type} omitted: {decoded_size(encoded)} bytes as base64]"


def decoded_size(encoded: str) -> int:
    """How many bytes the base64 text ``encoded`` decodes to (line breaks and padding are not
    data)."""
    text = encoded.replace("\n", "").replace("\r", "")
    return (len(text) - (len(text) - len(text.rstrip("=")))) * 3 // 4


def sniff_media_type(encoded: str, default: str = "application/octet-stream") -> str:
    """The media type of base64 data from its first bytes (PNG, JPEG, GIF, WebP, WAV, PDF,
    MP3, Ogg, FLAC, ZIP), else ``default``."""
    try:
        head = base64.b64decode(encoded[:24] + "=" * (-len(encoded[:24]) % 4))
    except (binascii.Error, ValueError):
        return default
    if head[:4] == b"RIFF":
        return {b"WAVE": "audio/wav", b"WEBP": "image/webp"}.get(head[8:12], default)
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    if head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return default


def _looks_encoded(text: str) -> bool:
    """Base64 characters only, and as varied as encoded bytes are (upper and lower case
    letters, digits, 20 distinct characters or more), so a long run of letters is not taken
    for media."""
    head = text[:4096]
    return (
        _BASE64.fullmatch(head) is not None
        and len(set(head)) >= 20
        and any(c.isdigit() for c in head)
        and any(c.isupper() for c in head)
        and any(c.islower() for c in head)
    )


def _placeholder(value: str, siblings: dict[str, Any], fallback: str) -> str:
    if value.startswith("data:"):
        header, sep, payload = value.partition(";base64,")
        if sep:
            return media_placeholder(header[5:] or "data", payload)
    declared = siblings.get("media_type") or siblings.get("mime_type")
    fmt = siblings.get("format")
    if isinstance(declared, str) and declared:
        media_type = declared
    elif fallback == "audio" and isinstance(fmt, str) and fmt:
        media_type = _AUDIO_FORMATS.get(fmt.lower(), f"audio/{fmt.lower()}")
    else:
        media_type = sniff_media_type(value, fallback)
    return media_placeholder(media_type, value)


_PLACEHOLDER = re.compile(r"\[[^\]]* omitted: \d+ bytes as base64\]")


def _is_media(key: str, item: str, parent: str, siblings: dict[str, Any]) -> str | None:
    """The fallback media type when ``siblings[key] == item`` is a media field, else None."""
    fallback = MEDIA_KEYS.get((parent, key)) or MEDIA_KEYS.get(("*", key))
    if fallback is None or _PLACEHOLDER.fullmatch(item):
        return None
    if parent == "source" and siblings.get("type") != "base64":  # Anthropic text sources
        return None
    return fallback


def _scrub_text(text: str, media: bool) -> str:
    if media and len(text) >= MEDIA_MIN_CHARS:
        if text.startswith("data:") and ";base64," in text[:256]:
            return _placeholder(text, {}, "application/octet-stream")
        if _looks_encoded(text):
            return media_placeholder(sniff_media_type(text), text)
    return mask_urls(text)


def scrub(value: Any, *, media: bool = True, parent: str = "") -> Any:
    """``value`` as it may be recorded: every field named as a credential
    (:data:`SECRET_FIELDS`) replaced by ``REDACTED``, every URL in it through
    :func:`safe_url` and, with ``media``, inline base64 media replaced by a placeholder naming
    its type and size — media fields (:data:`MEDIA_KEYS`) whatever their size, any other data
    URL or encoded-looking base64 string of :data:`MEDIA_MIN_CHARS` or more.

    Returns ``value`` itself when there is nothing to replace (no copy is made).
    """
    if isinstance(value, str):
        return _scrub_text(value, media)
    if isinstance(value, list):
        items = [scrub(item, media=media, parent=parent) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        changed = {}
        for key, item in value.items():
            if (
                isinstance(key, str)
                and isinstance(item, str)
                and item
                and key.lower().replace("-", "_") in SECRET_FIELDS
            ):
                changed[key] = REDACTED
                continue
            if media and isinstance(item, str) and item:
                fallback = _is_media(key, item, parent, value)
                if fallback is not None:
                    changed[key] = _placeholder(item, value, fallback)
                    continue
            new = scrub(item, media=media, parent=key if isinstance(key, str) else "")
            if new is not item:
                changed[key] = new
        return {**value, **changed} if changed else value
    return value
