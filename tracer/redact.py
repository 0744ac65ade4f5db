"""What must never be recorded: credentials in headers and URLs.

The tracer records no request or response headers except the few named in
:data:`RECORDED_REQUEST_HEADERS` / :data:`RECORDED_RESPONSE_HEADERS`, so ``Authorization``,
``api-key``, ``x-api-key`` and cookies never reach a span. URLs lose their user-info, and query
parameters that carry keys are replaced by ``REDACTED``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["RECORDED_REQUEST_HEADERS", "RECORDED_RESPONSE_HEADERS", "REDACTED", "safe_url"]

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
