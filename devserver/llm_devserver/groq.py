"""Groq's OpenAI-compatible API (``/openai/v1/...``), as the ``groq`` SDK speaks it.

Groq shares the ``/openai/v1`` prefix with Azure OpenAI's v1 API; :func:`is_groq` tells its
requests apart by the SDK's ``User-Agent`` (``Groq/Python x.y.z`` or ``AsyncGroq/Python ...``)
or by a ``gsk_`` API key (Groq's key prefix, for OpenAI clients pointed at Groq).

Chat completions are OpenAI-shaped with Groq's extras: ``x_groq: {"id": "req_..."}``, timing in
``usage`` (``queue_time``, ``prompt_time``, ``completion_time``, ``total_time``), ``service_tier:
"on_demand"``, no ``refusal``/``annotations``. Streams carry ``x_groq.id`` in the first chunk and
``x_groq.usage`` in the last one (the chunk with the ``finish_reason``); tool calls arrive whole,
each in one chunk; a top-level usage chunk (``choices: []``) follows only when
``stream_options.include_usage`` asks for it. Errors are OpenAI-style bodies with Groq's wording.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import Any

from llm_devserver.chat import chat_reply
from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    data_frame,
    split_pieces,
)

__all__ = [
    "MODELS",
    "chat_completion_reply",
    "groq_error",
    "is_groq",
    "models_reply",
    "request_id",
    "response_headers",
    "unknown_url",
]

MODELS: tuple[tuple[str, str, int], ...] = (
    ("llama-3.1-8b-instant", "Meta", 131072),
    ("llama-3.3-70b-versatile", "Meta", 131072),
    ("openai/gpt-oss-20b", "OpenAI", 131072),
    ("openai/gpt-oss-120b", "OpenAI", 131072),
    ("qwen/qwen3-32b", "Alibaba Cloud", 131072),
    ("whisper-large-v3", "OpenAI", 448),
    ("whisper-large-v3-turbo", "OpenAI", 448),
)
_USER_AGENT = re.compile(r"(Async)?Groq/", re.IGNORECASE)
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_STREAM_ERROR = {
    "error": {
        "message": "Service Unavailable: the model is temporarily overloaded.",
        "type": "internal_server_error",
    }
}
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request (simulated by the dev server).", "invalid_request_error", None),
    401: ("Invalid API Key", "invalid_request_error", "invalid_api_key"),
    403: ("Forbidden", "permissions_error", "permission_denied"),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    413: ("Request Entity Too Large", "invalid_request_error", "request_too_large"),
    422: ("Unprocessable Entity", "invalid_request_error", None),
    429: (
        "Rate limit reached for model `{model}` in organization `org_01devserver` service tier "
        "`on_demand` on tokens per minute (TPM): Limit 6000, Used 5990, Requested 120. Please try "
        "again in 1.1s. Need more tokens? Upgrade to Dev Tier today at "
        "https://console.groq.com/settings/billing",
        "tokens",
        "rate_limit_exceeded",
    ),
    498: ("Flex Tier capacity exceeded. Please try again later.", "capacity_exceeded", None),
    500: ("Internal Server Error", "internal_server_error", None),
    502: ("Bad Gateway", "internal_server_error", None),
    503: ("Service Unavailable", "internal_server_error", None),
}


def is_groq(headers: dict[str, str]) -> bool:
    """Whether a ``/openai/v1/...`` request comes from a Groq client (not Azure OpenAI)."""
    if _USER_AGENT.match(headers.get("user-agent", "")):
        return True
    auth = headers.get("authorization", "")
    return auth.lower().startswith("bearer gsk_")


def request_id() -> str:
    """A Groq request id: ``req_01`` and 24 ULID characters."""
    return "req_01" + "".join(secrets.choice(_CROCKFORD) for _ in range(24))


def groq_error(status: int, message: str | None = None, *, model: str = "") -> dict[str, Any]:
    """Groq's OpenAI-style error body ``{"error": {"message", "type"[, "code"]}}``."""
    type_, code = "invalid_request_error", None
    known = _ERRORS.get(status)
    if known is not None:
        template, type_, code = known
        if message is None:
            message = template.format(model=model or "unknown")
    elif message is None:
        message = f"Request failed ({status})."
        type_ = "internal_server_error" if status >= 500 else type_
    error: dict[str, Any] = {"message": message, "type": type_}
    if code is not None:
        error["code"] = code
    return {"error": error}


def unknown_url(method: str, path: str) -> dict[str, Any]:
    """Groq's 404 body for a path it does not serve."""
    message = (
        f"Unknown request URL: {method} {path}. Please check the URL for typos, or see the docs "
        "at https://console.groq.com/docs/"
    )
    return {"error": {"message": message, "type": "invalid_request_error", "code": "unknown_url"}}


def response_headers(elapsed_ms: int) -> dict[str, str]:
    """The headers Groq's front end adds to every answer."""
    return {
        "x-request-id": request_id(),
        "x-groq-region": "gcp-us-central1",
        "x-ratelimit-limit-requests": "14400",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-requests": "14399",
        "x-ratelimit-remaining-tokens": "5990",
        "x-ratelimit-reset-requests": "6s",
        "x-ratelimit-reset-tokens": "100ms",
        "server-timing": f"total;dur={elapsed_ms}",
    }


def models_reply() -> dict[str, Any]:
    """``GET /openai/v1/models``: Groq's model list."""
    data = [
        {
            "id": model_id,
            "object": "model",
            "created": 1693721698,
            "owned_by": owner,
            "active": True,
            "context_window": window,
            "public_apps": None,
            "max_completion_tokens": min(window, 32768),
        }
        for model_id, owner, window in MODELS
    ]
    return {"object": "list", "data": data}


def _usage(openai_usage: dict[str, Any], ctl: Controls) -> dict[str, Any]:
    """OpenAI usage counts with Groq's deterministic timings (seconds)."""
    prompt = int(openai_usage["prompt_tokens"])
    completion = int(openai_usage["completion_tokens"])
    prompt_time = round(0.000_75 + prompt * 0.000_012_5, 9)
    completion_time = round(0.000_5 + completion / 740.0, 9)
    usage: dict[str, Any] = {
        "queue_time": 0.046_137_212,
        "prompt_tokens": prompt,
        "prompt_time": prompt_time,
        "completion_tokens": completion,
        "completion_time": completion_time,
        "total_tokens": prompt + completion,
        "total_time": round(prompt_time + completion_time, 9),
    }
    if ctl.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": max(0, ctl.cached_tokens)}
    return usage


def _choice(openai_choice: dict[str, Any], ctl: Controls) -> dict[str, Any]:
    source = openai_choice["message"]
    message: dict[str, Any] = {"role": "assistant", "content": source.get("content")}
    if ctl.refusal is not None:  # Groq has no refusal field: the model just says no
        message["content"] = ctl.refusal
    if source.get("tool_calls"):
        message["tool_calls"] = source["tool_calls"]
    return {
        "index": openai_choice["index"],
        "message": message,
        "logprobs": None,
        "finish_reason": openai_choice["finish_reason"],
    }


def _stream_error(_sent: int) -> bytes:
    return data_frame(_STREAM_ERROR)


def _stream(completion: dict[str, Any], include_usage: bool) -> StreamReply:
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": completion["system_fingerprint"],
    }
    x_groq_id = completion["x_groq"]["id"]
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        item = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [item]}

    first = chunk({"role": "assistant", "content": None if message.get("tool_calls") else ""})
    first["x_groq"] = {"id": x_groq_id}
    events = [first]
    if message.get("tool_calls"):
        calls = [{**call, "index": k} for k, call in enumerate(message["tool_calls"])]
        events.append(chunk({"tool_calls": calls}))
    else:
        events.extend(chunk({"content": piece}) for piece in split_pieces(message["content"] or ""))
    last = chunk({}, choice["finish_reason"])
    last["x_groq"] = {"id": x_groq_id, "usage": completion["usage"]}
    events.append(last)
    if include_usage:
        events.append({**base, "choices": [], "usage": completion["usage"]})
    frames = [data_frame(event) for event in events]
    return StreamReply(frames, _stream_error, trailer=b"data: [DONE]\n\n")


def chat_completion_reply(request: dict[str, Any], ctl: Controls, *, fingerprint: str) -> Reply:
    """Answer ``POST /openai/v1/chat/completions`` the way Groq does."""
    n = request.get("n")
    if n is not None and as_int(n) != 1:
        raise ApiError("'n' : number must be at most 1", param="n")
    plain = {key: value for key, value in request.items() if key not in ("stream", "logprobs")}
    plain["n"] = 1
    reply = chat_reply(plain, ctl, fingerprint=fingerprint)
    assert isinstance(reply, JsonReply)
    source: dict[str, Any] = reply.payload
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": source["model"],
        "choices": [_choice(c, ctl) for c in source["choices"]],
        "usage": _usage(source["usage"], ctl),
        "system_fingerprint": fingerprint,
        "x_groq": {"id": request_id()},
        "service_tier": "on_demand",
    }
    if request.get("stream") is True:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return _stream(completion, include_usage)
    return JsonReply(completion)
