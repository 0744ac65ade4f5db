"""Hostile and broken input: a corpus of scripted raw responses, each sent twice.

Every case is served byte for byte by :class:`rawserver.RawServer` and requested twice, through
the real openai SDK or raw httpx: once untraced (``httpx.Client()``), once traced
(``TracedClient()``, strict mode). The caller must get the same outcome both times, the tracer
must raise nothing of its own, and exactly one span must be recorded and ended, with the status,
``stream.completed``, partial content and ``tracer.problems`` sentence the case expects.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mlflow.entities import Span
from openai import OpenAI
from rawserver import RawServer, head
from rawserver import chunk as http_chunk
from readback import read_spans

import tracer.failsafe
import tracer.recorder
import tracer.spans
import tracer.transport
from tracer import TracedClient, TracerConfig
from tracer.sse import SSEDecoder

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
MODEL = "gpt-x"
PROMPT = [{"role": "user", "content": "hi"}]
JSON_TYPE = [("Content-Type", "application/json")]
SSE_TYPE = [("Content-Type", "text/event-stream")]
BOM = b"\xef\xbb\xbf"
BIG = 200_000  # bytes of content in the "line above the limit" cases
LIMIT = 64 * 1024


# --- building responses ----------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def body(
    data: Any,
    *,
    status: int = 200,
    headers: list[tuple[str, str]] | None = JSON_TYPE,
    length: int | None = None,
    reason: str = "",
) -> list[bytes]:
    """A whole response with ``Content-Length`` (``length`` to lie about it), in two pieces."""
    raw = data if isinstance(data, bytes) else dumps(data)
    size = len(raw) if length is None else length
    half = len(raw) // 2
    framing = [("Content-Length", str(size))]
    return [head(status, reason, [*(headers or []), *framing]), raw[:half], raw[half:]]


def stream(
    *parts: bytes,
    status: int = 200,
    headers: list[tuple[str, str]] | None = SSE_TYPE,
    chunked: bool = False,
) -> list[bytes]:
    """A response whose body is ``parts``, one network piece each; delimited by the server
    closing the connection, or in chunked encoding (one HTTP chunk per piece, then the end)."""
    if not chunked:
        return [head(status, headers=headers), *parts]
    framing = [("Transfer-Encoding", "chunked")]
    return [
        head(status, headers=[*(headers or []), *framing]),
        *(http_chunk(p) for p in parts),
        http_chunk(b""),
    ]


def ev(value: Any, event: str | None = None, eol: bytes = b"\n") -> bytes:
    """One SSE event: ``data:`` with ``value`` (JSON unless bytes), optionally ``event:``."""
    data = value if isinstance(value, bytes) else dumps(value)
    prefix = b"event: " + event.encode() + eol if event else b""
    return prefix + b"data: " + data + eol + eol


def cc(
    content: str | None = None,
    *,
    role: str | None = None,
    finish: str | None = None,
    **delta: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` for choice 0."""
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def tool(index: int | None = None, id: str | None = None, name: str = "", args: str = "") -> Any:
    """A ``chat.completion.chunk`` carrying one tool-call delta."""
    call: dict[str, Any] = {"type": "function", "function": {"arguments": args}}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
    if name:
        call["function"]["name"] = name
    return ev(cc(tool_calls=[call]))


C1, C2, STOP = ev(cc("Bon", role="assistant")), ev(cc("jour")), ev(cc(finish="stop"))
HELLO = [C1, C2, STOP]
DONE = b"data: [DONE]\n\n"
COMPLETION = {
    "id": "chatcmpl-2",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Salut"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
USAGE = {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
HTML_503 = b"<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>"


def nested(depth: int) -> bytes:
    return b'{"id": "deep", "choices": [], "extra": ' + b"[" * depth + b"]" * depth + b"}"


def sse_text(parts: list[bytes]) -> str:
    return b"".join(parts).decode()


# Responses API stream events.
def rv(kind: str, **fields: Any) -> bytes:
    return ev({"type": kind, **fields}, event=kind)


R_CREATED = rv("response.created", response={"id": "resp_1", "model": MODEL, "status": "x"})
R_ITEM = rv(
    "response.output_item.added",
    output_index=0,
    item={"type": "message", "id": "msg_1", "role": "assistant", "content": []},
)


def r_delta(text: str, **fields: Any) -> bytes:
    return rv(
        "response.output_text.delta",
        **{"output_index": 0, "content_index": 0, "delta": text, **fields},
    )


R_FINAL = {
    "id": "resp_1",
    "object": "response",
    "model": MODEL,
    "status": "completed",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
}


# Anthropic Messages stream events.
def av(kind: str, **fields: Any) -> bytes:
    return ev({"type": kind, **fields}, event=kind)


A_START = av(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "usage": {"input_tokens": 3, "output_tokens": 0},
    },
)
A_BLOCK = av("content_block_start", index=0, content_block={"type": "text", "text": ""})


def a_text(text: str, index: int = 0) -> bytes:
    return av("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


A_END = [
    av("content_block_stop", index=0),
    av("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2}),
    av("message_stop"),
]


# --- reading spans -------------------------------------------------------------------------


def text_of(span: Span) -> str | None:
    """The text a span's outputs hold, whatever the API (``{"text": ...}`` for non-JSON)."""
    out = span.outputs
    if isinstance(out, dict) and set(out) == {"text"}:
        return out["text"]
    api = span.attributes["tracer.api"]
    if api == "chat.completions":
        return out["choices"][0]["message"]["content"]
    if api == "completions":
        return out["choices"][0]["text"]
    if api == "responses":
        return "".join(
            part.get("text", "")
            for item in out["output"]
            for part in item.get("content") or []
            if isinstance(part, dict)
        )
    return "".join(b.get("text", "") for b in out["content"])


def tool_calls(span: Span) -> list[tuple[Any, str, str]]:
    calls = span.outputs["choices"][0]["message"]["tool_calls"]
    return [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls]


def has(**attributes: Any) -> Callable[[Span], None]:
    def check(span: Span) -> None:
        for key, value in attributes.items():
            assert span.attributes.get(key.replace("__", ".")) == value, key

    return check


# --- the corpus ------------------------------------------------------------------------------

UNSET: Any = object()


@dataclass(frozen=True)
class Case:
    """One scripted response and what the traced run must record for it."""

    name: str
    pieces: list[bytes]
    via: str = "sdk"  # "sdk": the openai SDK; "raw": httpx, the body read with iter_raw()
    path: str = CHAT
    stream: bool = False  # what the request asks for
    error: bool = False  # the span's status is ERROR
    problem: str | None = None  # a substring of one tracer.problems sentence; None: no problems
    completed: bool | None = None  # stream.completed; None: the span is not a stream
    content: str | None = None  # the text the outputs hold (see text_of)
    outputs: Any = UNSET  # the exact outputs
    check: Callable[[Span], None] | None = None
    close: str = "close"  # how the server ends the connection (see rawserver.Script)
    pause: float = 0.003  # between network pieces
    max_body_bytes: int | None = None
    timeout: float = 10.0
    xfail: str | None = None  # a known tracer bug outside this test's reach


CASES = [
    # --- non-streaming bodies ----------------------------------------------------------------
    Case("json_ok", body(COMPLETION), content="Salut", check=has(mlflow__chat__tokenUsage=USAGE)),
    Case(
        "not_json_200",
        body(b"Internal hiccup, try later"),
        problem="response body is not JSON",
        content="Internal hiccup, try later",
    ),
    Case(
        "truncated_json",
        body(dumps(COMPLETION)[:60]),
        problem="not JSON",
        content=dumps(COMPLETION)[:60].decode(),
    ),
    Case(
        "html_502_from_proxy",
        body(HTML_502, status=502, reason="Bad Gateway", headers=[("Content-Type", "text/html")]),
        error=True,
        problem="not JSON",
        content=HTML_502.decode(),
        check=has(http__response__status_code=502),
    ),
    Case(
        "html_503_with_retry_after",
        body(
            HTML_503,
            status=503,
            reason="Service Unavailable",
            headers=[("Content-Type", "text/html; charset=utf-8"), ("Retry-After", "1")],
        ),
        via="raw",
        error=True,
        problem="not JSON",
        content=HTML_503.decode(),
    ),
    Case(
        "json_labelled_text_plain",
        body(COMPLETION, headers=[("Content-Type", "text/plain")]),
        content="Salut",
    ),
    Case("json_without_content_type", body(COMPLETION, headers=None), content="Salut"),
    Case(
        "json_labelled_event_stream",
        body(COMPLETION, headers=SSE_TYPE),
        content="Salut",
        completed=None,
    ),
    # A stream the server mislabels or does not label is read by its framing (issue 23).
    Case(
        "stream_labelled_json",
        stream(*HELLO, DONE, headers=JSON_TYPE),
        stream=True,
        completed=True,
        content="Bonjour",
        check=has(stream__chunk_count=3, stream__unlabelled=True),
    ),
    Case(
        "stream_without_content_type",
        stream(*HELLO, DONE, headers=None),
        stream=True,
        completed=True,
        content="Bonjour",
        check=has(stream__chunk_count=3, stream__unlabelled=True),
    ),
    Case(
        "empty_body_200",
        body(b""),
        problem="empty",
    ),
    Case("no_content_204", [head(204)], outputs=None),
    Case("json_array_body", body([1, 2, 3]), via="raw", outputs=[1, 2, 3]),
    Case("json_string_body", body("just a string"), via="raw", outputs="just a string"),
    Case("json_number_body", body(42), via="raw", outputs=42),
    Case("json_null_body", body(b"null"), via="raw", outputs=None),
    Case(
        "nulls_everywhere_body",
        body({"id": None, "model": None, "choices": None, "usage": None, "error": None}),
        via="raw",
        outputs={"id": None, "model": None, "choices": None, "usage": None, "error": None},
        check=has(mlflow__llm__model=MODEL),
    ),
    Case(
        "choices_not_a_list_body",
        body({"id": "x", "model": MODEL, "choices": 5}),
        via="raw",
        outputs={"id": "x", "model": MODEL, "choices": 5},
    ),
    Case(
        "choice_message_null_body",
        body({**COMPLETION, "choices": [{"index": 0, "message": None, "finish_reason": None}]}),
        check=has(mlflow__chat__tokenUsage=USAGE),
    ),
    Case(
        "huge_numbers",
        body(
            dumps({**COMPLETION, "usage": None})[:-1]
            + b', "usage": {"prompt_tokens": 123456789012345678901234567890, '
            b'"completion_tokens": 1, "total_tokens": 2}, "x_score": 1e400}'
        ),
        content="Salut",
        check=has(
            mlflow__chat__tokenUsage={
                "input_tokens": 123456789012345678901234567890,
                "output_tokens": 1,
                "total_tokens": 2,
            }
        ),
    ),
    Case(
        "integer_with_5000_digits",
        body(b'{"id": "x", "created": ' + b"7" * 5000 + b"}"),
        problem="not JSON",
        content='{"id": "x", "created": ' + "7" * 1977,
    ),
    Case(
        "nested_100_deep",
        body(nested(100)),
        via="raw",
        check=lambda s: json.dumps(s.outputs["extra"]) == "[" * 99 + "[]" + "]" * 99,
    ),
    Case(
        "nested_800_deep",
        body(nested(800)),
        via="raw",
        problem="nest deeper than 128 levels",
    ),
    Case(
        "nested_5000_deep",
        body(nested(5000)),
        via="raw",
        problem="not JSON",
    ),
    Case("bom_before_json", body(BOM + dumps(COMPLETION)), content="Salut"),
    Case(
        "invalid_utf8_body",
        body(b'{"id": "caf\xe9", "choices": []}'),
        via="raw",
        problem="not JSON",
        content='{"id": "caf\ufffd", "choices": []}',
    ),
    Case(
        "gzip_ok",
        body(gzip.compress(dumps(COMPLETION)), headers=[*JSON_TYPE, ("Content-Encoding", "gzip")]),
        content="Salut",
    ),
    Case(
        "gzip_header_plain_body_raw",
        body(COMPLETION, headers=[*JSON_TYPE, ("Content-Encoding", "gzip")]),
        via="raw",
        error=True,  # httpx cannot decode it: the exchange failed, whoever reads it
        problem="could not be decoded",
    ),
    Case(
        "gzip_header_plain_body_sdk",
        body(COMPLETION, headers=[*JSON_TYPE, ("Content-Encoding", "gzip")]),
        error=True,
        problem="could not be decoded",
    ),
    Case(
        "gzip_truncated",
        body(
            gzip.compress(dumps(COMPLETION))[:80],
            headers=[*JSON_TYPE, ("Content-Encoding", "gzip")],
        ),
        problem="not JSON",
    ),
    Case(
        "content_length_too_long_server_closes_early",
        body(dumps(COMPLETION)[:50], length=1000),
        error=True,
        problem="not JSON",
        content=dumps(COMPLETION)[:50].decode(),
    ),
    Case(
        "content_length_too_short",
        body(COMPLETION, length=50),
        via="raw",
        problem="not JSON",
        content=dumps(COMPLETION)[:50].decode(),
    ),
    Case("no_response_at_all", [], error=True, outputs=None),
    Case("garbage_status_line", [b"HTTP/1.1 two hundred OK\r\n\r\n{}"], via="raw", error=True),
    Case(
        "server_stalls_read_timeout",
        [head(200, headers=[*JSON_TYPE, ("Content-Length", "500")]), b'{"id": "c'],
        via="raw",
        close="wait",
        timeout=0.5,
        error=True,
        problem="not JSON",
        content='{"id": "c',
    ),
    Case(
        "body_above_max_body_bytes",
        body({**COMPLETION, "pad": "x" * 3000}),
        max_body_bytes=1000,
        problem="exceeds TRACER_MAX_BODY_BYTES (1000)",
        outputs=None,
    ),
    Case(
        "megabyte_body_below_max_body_bytes",
        body({**COMPLETION, "pad": "x" * 1_000_000}),
        max_body_bytes=2_000_000,
        content="Salut",
    ),
    # --- chat completion streams -------------------------------------------------------------
    Case(
        "stream_ok",
        stream(*HELLO, DONE),
        stream=True,
        completed=True,
        content="Bonjour",
        check=has(stream__chunk_count=3),
    ),
    Case(
        "stream_comments_event_id_retry_fields",
        stream(
            b": keep-alive\n",
            b"event: chunk\nid: 1\nretry: 3000\n" + C1,
            b": ping\nid: 2\0x\nevent: chunk\n" + C2,
            b"x-vendor-field: whatever\n" + STOP,
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_blank_lines_between_events",
        stream(b"\n\n", C1, b"\n\n\n", C2, b"\r\n\r\n", STOP, b"\n", DONE),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_empty_data_event",
        stream(C1, b"data:\n\n", C2, STOP, DONE),
        via="raw",
        stream=True,
        problem="stream event is not JSON: ''",
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_missing_done",
        stream(*HELLO),
        stream=True,
        completed=False,
        content="Bonjour",
    ),
    Case(
        "stream_done_then_garbage",
        stream(*HELLO, DONE, b"data: {garbage\n\n", b"\x00\xff\xfe not even text", DONE),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_bom_at_start",  # the SDK itself drops the first event; the tracer does not
        stream(BOM + C1, C2, STOP, DONE),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_bom_split_across_pieces",
        stream(BOM[:1], BOM[1:] + C1[:3], C1[3:], C2, STOP, DONE),
        via="raw",
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_cr_only_line_endings",
        stream(
            *(p.replace(b"\n", b"\r") for p in (C1[:-1], C1[-1:] + C2, STOP[:9], STOP[9:], DONE))
        ),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_crlf_split_between_pieces",  # "…\r" | "\n" | "\n…": CRLF, then an LF blank line
        stream(C1[:-2] + b"\r", b"\n", b"\n" + C2, STOP, DONE),
        stream=True,
        completed=True,
        content="Bonjour",
        pause=0.02,
    ),
    Case(
        "stream_data_split_across_data_lines",
        stream(
            *(
                b"".join(b"data: " + line + b"\n" for line in dumps(c).split(b" ")) + b"\n"
                for c in (cc("Bon", role="assistant"), cc("jour"), cc(finish="stop"))
            ),
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_unknown_fields",
        stream(
            ev({**cc("Bon", role="assistant"), "x_vendor": {"a": [1]}, "obfuscation": "zz"}),
            ev(cc(reasoning_content="Hm")),
            ev(cc("jour", reasoning_content="m.", x_delta_extra=None)),
            ev({**cc(finish="stop"), "choices": [{"index": 0, "delta": {}, "x": 1}]}),
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour",
        check=lambda s: s.outputs["choices"][0]["message"]["reasoning_content"] == "Hmm.",
    ),
    Case(
        "stream_nulls_everywhere",
        stream(
            ev({**cc(), "choices": None}),
            ev({**cc(), "choices": [{"index": 0, "delta": None, "finish_reason": None}]}),
            C1,
            ev(cc(content=None, role=None, tool_calls=None, refusal=None) | {"usage": None}),
            ev({**cc("jour"), "model": None, "id": None, "created": None, "usage": None}),
            ev({**cc(), "choices": [{"index": 0, "delta": {"content": None}, "logprobs": None}]}),
            STOP,
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_azure_content_filter_chunks",
        stream(
            ev(
                {
                    "id": "",
                    "object": "",
                    "created": 0,
                    "model": "",
                    "choices": [],
                    "prompt_filter_results": [
                        {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False}}}
                    ],
                }
            ),
            *HELLO,
            ev(
                {
                    **cc(),
                    "choices": [
                        {
                            "index": 0,
                            "delta": {},
                            "finish_reason": None,
                            "content_filter_results": {"hate": {"filtered": False}},
                        }
                    ],
                }
            ),
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour",
        check=has(mlflow__llm__model=MODEL),
    ),
    Case(
        "stream_chunks_without_choices",
        stream(ev({"id": "chatcmpl-1", "object": "chat.completion.chunk"}), *HELLO, DONE),
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_usage_chunk",
        stream(*HELLO, ev({**cc(), "choices": [], "usage": COMPLETION["usage"]}), DONE),
        stream=True,
        completed=True,
        content="Bonjour",
        check=has(mlflow__chat__tokenUsage=USAGE),
    ),
    Case(
        "stream_huge_numbers",
        stream(
            *HELLO,
            b'data: {"id": "chatcmpl-1", "choices": [], "created": 1e400, "usage": '
            b'{"prompt_tokens": 99999999999999999999999, "completion_tokens": 1}}\n\n',
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour",
        check=has(
            mlflow__chat__tokenUsage={
                "input_tokens": 99999999999999999999999,
                "output_tokens": 1,
                "total_tokens": 100000000000000000000000,
            }
        ),
    ),
    Case(
        "stream_error_event_midway",
        stream(C1, ev({"error": {"message": "The server is overloaded", "type": "server"}}), C2),
        stream=True,
        error=True,
        completed=False,
        content="Bon",
        check=lambda s: s.status.description == "The server is overloaded",
    ),
    Case(
        "stream_named_error_event",
        stream(C1, ev({"error": {"message": "boom"}}, event="error"), C2, DONE),
        via="raw",
        stream=True,
        error=True,
        completed=False,
        content="Bon",
    ),
    Case(
        "stream_junk_chunk_between_valid_ones",
        stream(C1, b'data: {"choices": [tru\n\n', C2, STOP, DONE),
        via="raw",
        stream=True,
        problem="stream event is not JSON",
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_junk_chunk_sdk_raises",  # the server waits: only the SDK's close ends it
        stream(C1, b"data: <html>oops</html>\n\n"),
        stream=True,
        close="wait",
        problem="stream event is not JSON: '<html>oops</html>'",
        completed=False,
        content="Bon",
    ),
    Case(
        "stream_json_array_string_number_null_chunks",
        stream(C1, b"data: [1, 2]\n\n", b'data: "hello"\n\n', b"data: 42\n\n", C2, DONE),
        via="raw",
        stream=True,
        problem="stream event is not a JSON object",
        completed=True,
        content="Bonjour",
        check=lambda s: len(s.attributes["tracer.problems"]) == 3,
    ),
    Case(
        "stream_choices_of_wrong_types",
        stream(
            ev({**cc(), "choices": "abc"}),
            ev({**cc(), "choices": 5}),
            ev({**cc(), "choices": [None, 5, "x"]}),
            ev({**cc(), "choices": [{"index": 0, "delta": "text"}]}),
            *HELLO,
            DONE,
        ),
        via="raw",
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_deeply_nested_chunk",
        stream(C1, b"data: " + nested(5000) + b"\n\n", C2, DONE),
        via="raw",
        stream=True,
        problem="stream event is not JSON",
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_tool_calls_out_of_order",
        stream(
            tool(1, "call_b", "b", '{"x"'),
            tool(0, "call_a", "a", '{"y": 1}'),
            tool(1, args=": 2}"),
            ev(cc(finish="tool_calls")),
            DONE,
        ),
        stream=True,
        completed=True,
        check=lambda s: tool_calls(s) == [("call_a", "a", '{"y": 1}'), ("call_b", "b", '{"x": 2}')],
    ),
    Case(
        "stream_tool_calls_missing_indices",
        stream(
            tool(id="call_a", name="a"),
            tool(args='{"y"'),
            tool(args=": 1}"),
            tool(id="call_b", name="b", args="{}"),
            DONE,
        ),
        stream=True,
        completed=True,
        check=lambda s: tool_calls(s) == [("call_a", "a", '{"y": 1}'), ("call_b", "b", "{}")],
    ),
    Case(
        "stream_tool_calls_missing_ids",
        stream(tool(0, name="a", args='{"y"'), tool(0, args=": 1}"), tool(1, name="b"), DONE),
        stream=True,
        completed=True,
        check=lambda s: tool_calls(s) == [(None, "a", '{"y": 1}'), (None, "b", "")],
    ),
    Case(
        "stream_line_above_max_body_bytes",
        stream(C1, ev(cc("x" * BIG)), C2, STOP, DONE),
        stream=True,
        max_body_bytes=LIMIT,
        problem="1 stream line(s) exceeded TRACER_MAX_BODY_BYTES",
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_megabyte_line_below_max_body_bytes",
        stream(C1, ev(cc("x" * 1_000_000)), C2, STOP, DONE),
        stream=True,
        completed=True,
        content="Bon" + "x" * 1_000_000 + "jour",
    ),
    Case(
        "stream_endless_line_without_newline",
        stream(C1, b"data: " + b"y" * 1_000_000, b"y" * 1_000_000),
        via="raw",
        stream=True,
        max_body_bytes=LIMIT,
        problem="exceeded TRACER_MAX_BODY_BYTES",
        completed=False,
        content="Bon",
    ),
    Case(
        "stream_invalid_utf8_raw",
        stream(C1, C2.replace(b"jour", b"j\xffour"), STOP, DONE),
        via="raw",
        stream=True,
        problem="1 stream line(s) were not valid UTF-8",
        completed=True,
        content="Bonj\ufffdour",
    ),
    Case(
        "stream_invalid_utf8_sdk_raises",
        stream(C1, C2.replace(b"jour", b"j\xffour")),
        stream=True,
        close="wait",
        problem="not valid UTF-8",
        completed=False,
        content="Bonj\ufffdour",
    ),
    Case(
        "stream_utf8_character_split_across_pieces",
        stream(
            C1,
            *(lambda c: [c[: c.index(b"\xe2") + 1], c[c.index(b"\xe2") + 1 :]])(
                ev(cc("jour \u2600"))
            ),
            STOP,
            DONE,
        ),
        stream=True,
        completed=True,
        content="Bonjour \u2600",
    ),
    Case(
        "stream_request_html_502",
        body(HTML_502, status=502, reason="Bad Gateway", headers=[("Content-Type", "text/html")]),
        stream=True,
        error=True,
        problem="response body is not JSON",
        content=HTML_502.decode(),
    ),
    Case(
        "stream_gzip_ok",
        [
            head(200, headers=[*SSE_TYPE, ("Content-Encoding", "gzip")]),
            *(lambda z: [z[:10], z[10:40], z[40:]])(gzip.compress(b"".join([*HELLO, DONE]))),
        ],
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    Case(
        "stream_gzip_header_plain_body",
        stream(*HELLO, DONE, headers=[*SSE_TYPE, ("Content-Encoding", "gzip")]),
        via="raw",
        stream=True,
        error=True,  # httpx cannot decode it: the exchange failed, whoever reads it
        problem="response body could not be decoded",
        completed=False,
        outputs=None,
    ),
    Case(
        "stream_chunked_cut_mid_chunk",
        [*stream(C1, chunked=True)[:2], b"1f4\r\n" + C2[:10]],
        stream=True,
        error=True,
        completed=False,
        content="Bon",
    ),
    Case(
        "stream_connection_reset",
        stream(C1, C2),
        stream=True,
        close="abort",
        error=True,
        completed=False,
        content="Bonjour",
    ),
    Case(
        "stream_close_delimited_cut_mid_line",
        stream(C1, C2[:20]),
        via="raw",
        stream=True,
        problem="stream event is not JSON",
        completed=False,
        content="Bon",
    ),
    Case(
        "stream_request_429_json_error",
        body(
            {"error": {"message": "Rate limit reached", "type": "requests"}},
            status=429,
            reason="Too Many Requests",
        ),
        stream=True,
        error=True,
        check=lambda s: s.status.description == "Rate limit reached",
    ),
    Case(
        "stream_500_error_as_event_stream",
        stream(ev({"error": {"message": "kaput"}}), status=500),
        via="raw",
        stream=True,
        error=True,
        completed=False,
        check=lambda s: s.status.description == "kaput",
    ),
    Case(
        "stream_empty_200",
        stream(),
        stream=True,
        completed=False,
        outputs=None,
        check=has(stream__chunk_count=0),
    ),
    Case("stream_done_only", stream(DONE), stream=True, completed=True, outputs=None),
    Case(
        "completions_stream_choices_not_a_list",
        stream(
            ev({"id": "c", "object": "text_completion", "model": MODEL, "choices": 5}),
            ev({"id": "c", "model": MODEL, "choices": [{"index": 0, "text": "Bon"}]}),
            ev({"id": "c", "model": MODEL, "choices": [{"text": "jour", "finish_reason": "x"}]}),
            DONE,
        ),
        via="raw",
        path=COMPLETIONS,
        stream=True,
        completed=True,
        content="Bonjour",
    ),
    # --- Responses API streams ---------------------------------------------------------------
    Case(
        "responses_stream_with_unknown_events",
        stream(
            b": hello\n\n",
            R_CREATED,
            rv("response.in_progress", response={"id": "resp_1", "model": MODEL}),
            R_ITEM,
            r_delta("Hel"),
            rv("response.vendor.custom_thing", payload=[1, 2]),
            r_delta("lo"),
            rv("response.completed", response=R_FINAL),
        ),
        path=RESPONSES,
        stream=True,
        completed=True,
        content="Hello",
        check=has(mlflow__chat__tokenUsage=USAGE),
    ),
    Case(
        "responses_stream_junk_and_cut",
        stream(R_CREATED, b"data: {oops\n\n", b"data: [1]\n\n", R_ITEM, r_delta("Hel")),
        via="raw",
        path=RESPONSES,
        stream=True,
        problem="stream event is not JSON: '{oops'",
        completed=False,
        content="Hel",
    ),
    Case(
        "responses_stream_error_event",
        stream(R_CREATED, R_ITEM, r_delta("Hel"), rv("error", code="server", message="boom")),
        via="raw",
        path=RESPONSES,
        stream=True,
        error=True,
        completed=False,
        content="Hel",
        check=lambda s: s.status.description == "boom",
    ),
    Case(
        "responses_stream_failed",
        stream(
            R_CREATED,
            rv(
                "response.failed",
                response={"id": "resp_1", "status": "failed", "error": {"message": "no luck"}},
            ),
        ),
        via="raw",
        path=RESPONSES,
        stream=True,
        error=True,
        completed=True,
    ),
    Case(
        "responses_stream_content_index_null",
        stream(R_CREATED, R_ITEM, r_delta("Hel", content_index=None), r_delta("lo")),
        via="raw",
        path=RESPONSES,
        stream=True,
        completed=False,
        content="Hello",
    ),
    Case(
        "responses_stream_content_index_huge_or_negative",
        stream(
            R_CREATED, R_ITEM, r_delta("Hel", content_index=-1), r_delta("lo", content_index=10**12)
        ),
        via="raw",
        path=RESPONSES,
        stream=True,
        completed=False,
        content="Hello",
    ),
    Case(
        "responses_stream_deltas_without_items",
        stream(r_delta("Hel"), b"data: [DONE]\n\n", r_delta("lo")),
        via="raw",
        path=RESPONSES,
        stream=True,  # an OpenAI-style [DONE] in a Responses stream is not a problem
        completed=False,
        content="Hello",
    ),
    Case(
        "responses_stream_item_content_null",
        stream(
            R_CREATED,
            rv(
                "response.output_item.added",
                output_index=0,
                item={"type": "message", "content": None},
            ),
            r_delta("Hel"),
            r_delta("lo"),
        ),
        via="raw",
        path=RESPONSES,
        stream=True,
        completed=False,
        content="Hello",
    ),
    # --- Anthropic Messages streams ----------------------------------------------------------
    Case(
        "anthropic_stream_ping_junk_unknown_events",
        stream(
            A_START,
            av("ping"),
            A_BLOCK,
            a_text("Hello"),
            b"event: content_block_delta\ndata: {not json\n\n",
            av("vendor_event", whatever=True),
            a_text(" world"),
            *A_END,
        ),
        via="raw",
        path=MESSAGES,
        stream=True,
        problem="stream event is not JSON",
        completed=True,
        content="Hello world",
        check=lambda s: s.outputs["stop_reason"] == "end_turn",
    ),
    Case(
        "anthropic_stream_error_event",
        stream(
            A_START,
            A_BLOCK,
            a_text("Hello"),
            av("error", error={"type": "overloaded_error", "message": "Overloaded"}),
        ),
        via="raw",
        path=MESSAGES,
        stream=True,
        error=True,
        completed=False,
        content="Hello",
        check=lambda s: s.status.description == "Overloaded",
    ),
    Case(
        "anthropic_stream_nulls_in_blocks_and_usage",
        stream(
            av("message_start", message={"id": "m", "content": None, "usage": "n/a"}),
            av("content_block_start", index=0, content_block={"type": "text", "text": None}),
            a_text("Hello"),
            av("content_block_start", index=1, content_block={"type": "text", "citations": 5}),
            av("content_block_delta", index=1, delta={"type": "citations_delta", "citation": {}}),
            av("message_delta", delta=None, usage={"output_tokens": 2}),
            av("message_stop"),
        ),
        via="raw",
        path=MESSAGES,
        stream=True,
        completed=True,
        content="Hello",
    ),
    Case(
        "anthropic_stream_cut_mid_tool_input",
        stream(
            A_START,
            av(
                "content_block_start",
                index=0,
                content_block={"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ),
            av(
                "content_block_delta",
                index=0,
                delta={"type": "input_json_delta", "partial_json": '{"city": "Par'},
            ),
        ),
        via="raw",
        path=MESSAGES,
        stream=True,
        close="abort",
        error=True,
        problem="tool input of block 0 is not complete JSON",
        completed=False,
        check=lambda s: s.outputs["content"][0]["input"] == '{"city": "Par',
    ),
]


# --- running a case --------------------------------------------------------------------------


def request_body(case: Case) -> dict[str, Any]:
    if case.path == RESPONSES:
        return {"model": MODEL, "input": "hi", "stream": case.stream}
    if case.path == MESSAGES:
        return {"model": "claude-x", "max_tokens": 9, "messages": PROMPT, "stream": case.stream}
    if case.path == COMPLETIONS:
        return {"model": MODEL, "prompt": "hi", "stream": case.stream}
    return {"model": MODEL, "messages": PROMPT, "stream": case.stream}


def dump(value: Any) -> Any:
    return value.model_dump(warnings=False) if hasattr(value, "model_dump") else value


def raw_outcome(client: httpx.Client, url: str, case: Case) -> dict[str, Any]:
    """Status, headers and the raw body bytes as read, and the exception if one was raised."""
    outcome: dict[str, Any] = {}
    pieces: list[bytes] = []
    try:
        with client.stream("POST", url, json=request_body(case)) as response:
            outcome["status"] = response.status_code
            outcome["headers"] = response.headers.raw
            pieces.extend(response.iter_raw())
    except Exception as exc:
        outcome["error"] = (type(exc), str(exc))
    outcome["body"] = b"".join(pieces)
    return outcome


def sdk_outcome(client: httpx.Client, url: str, case: Case) -> dict[str, Any]:
    """The parsed result (a stream's events) and the exception if one was raised."""
    openai = OpenAI(base_url=url + "/v1", api_key="k", http_client=client, max_retries=0)
    outcome: dict[str, Any] = {}
    events: list[Any] = []
    try:
        if case.path == RESPONSES:
            result = openai.responses.create(model=MODEL, input="hi", stream=case.stream)
        else:
            result = openai.chat.completions.create(
                model=MODEL, messages=PROMPT, stream=case.stream
            )
        if case.stream:
            with result:
                events.extend(dump(event) for event in result)
        else:
            outcome["result"] = dump(result)
    except Exception as exc:
        outcome["error"] = (type(exc), str(exc))
    if case.stream:
        outcome["events"] = events
    return outcome


def run(case: Case, server: RawServer, traced: bool) -> dict[str, Any]:
    if traced:
        config = (
            TracerConfig()
            if case.max_body_bytes is None
            else TracerConfig(max_body_bytes=case.max_body_bytes)
        )
        client: httpx.Client = TracedClient(config=config, timeout=case.timeout)
    else:
        client = httpx.Client(timeout=case.timeout)
    with client:
        if case.via == "raw":
            return raw_outcome(client, server.url + case.path, case)
        return sdk_outcome(client, server.url, case)


@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


@pytest.fixture
def internal_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Every tracer-internal error reported while the test runs (strict mode re-raises them,
    which may be swallowed by the SDK's own error handling: this list is the proof)."""
    seen: list[BaseException] = []
    for module in (tracer.failsafe, tracer.recorder, tracer.transport, tracer.spans):
        if not hasattr(module, "internal_error"):
            continue
        original = module.internal_error

        def spy(where: str, exc: BaseException, *, strict: bool, _original: Any = original) -> None:
            seen.append(exc)
            _original(where, exc, strict=strict)

        monkeypatch.setattr(module, "internal_error", spy)
    return seen


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: a\r", b"\n", b"\ndata: b\n\n"],  # CRLF cut in two, then an LF blank line
        [b"data: a\r", b"\n", b"", b"\r\n", b"data: b\r\n\r\n"],
        [BOM[:1], BOM[1:2], BOM[2:], b"data: a\n\ndata: b\n\n"],  # BOM byte by byte
        [BOM + b"data: a\r\rdata: b\r\r"],
    ],
)
def test_sse_decoder_follows_the_network_cuts(pieces: list[bytes]) -> None:
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)] + decoder.flush()
    assert [event.data for event in events] == ["a", "b"]


def test_the_corpus_is_big_and_named_uniquely() -> None:
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)
    assert len(CASES) >= 50


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=c.xfail, strict=True)) if c.xfail else c
        for c in CASES
    ],
    ids=lambda c: c.name,
)
def test_hostile_response(
    case: Case, raw_server: RawServer, experiment: str, internal_errors: list[BaseException]
) -> None:
    raw_server.respond(case.pieces, pause=case.pause, close=case.close)
    plain = run(case, raw_server, traced=False)
    traced = run(case, raw_server, traced=True)

    # (b) the tracer raised nothing of its own; (a) the caller saw the same thing both times
    assert internal_errors == []
    assert traced == plain
    assert not raw_server.errors

    # (c) one span, ended, ERROR exactly where the case says the caller saw an error
    spans = read_spans(experiment)
    assert len(spans) == 1, [s.name for s in spans]
    span = spans[0]
    attributes = span.attributes
    assert span.end_time_ns is not None
    assert span.status.status_code == ("ERROR" if case.error else "OK"), span.status

    # (d) what could be parsed is recorded, what could not is marked
    problems = attributes.get("tracer.problems")
    if case.problem is None:
        assert problems is None
    else:
        assert problems and any(case.problem in p for p in problems), problems
    assert attributes.get("stream.completed") is case.completed
    if case.content is not None:
        assert text_of(span) == case.content
    if case.outputs is not UNSET:
        assert span.outputs == case.outputs
    if case.check is not None:
        assert case.check(span) in (None, True)
