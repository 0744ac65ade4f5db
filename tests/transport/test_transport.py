"""The transport in isolation, with pytest-httpx standing in for the network below it."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpx import HTTPXMock, IteratorStream
from readback import only_llm_span, read_spans

import tracer.apis.chat
import tracer.spans
from tracer import TracedAsyncClient, TracedClient, TracerConfig

URL = "http://llm.test/v1/chat/completions"
REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
EVENTS = [
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m-2024",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Bon"}}],
    },
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m-2024",
        "choices": [{"index": 0, "delta": {"content": "jour ☀"}, "finish_reason": "stop"}],
    },
]
SSE = (
    b"".join(f"data: {json.dumps(e, ensure_ascii=False)}\r\n\r\n".encode() for e in EVENTS)
    + b"data: [DONE]\r\n\r\n"
)
# Awkward network pieces: inside a CRLF, inside the multi-byte sun, one byte alone.
CUT = [5, SSE.index(b"\r\n") + 1, SSE.index("☀".encode()) + 1, SSE.index(b"[DONE]"), len(SSE) - 1]
PIECES = [SSE[a:b] for a, b in zip([0, *CUT], [*CUT, len(SSE)], strict=True)]
SSE_HEADERS = {"content-type": "text/event-stream", "x-request-id": "req_42"}
COMPLETION = {
    "id": "c2",
    "object": "chat.completion",
    "created": 1,
    "model": "m-2024",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Salut"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def test_stream_bytes_and_boundaries_are_unchanged(httpx_mock: HTTPXMock, experiment: str) -> None:
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream(PIECES))
    with TracedClient() as client, client.stream("POST", URL, json=REQUEST) as response:
        received = list(response.iter_raw())
    assert received == PIECES
    span = only_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == "Bonjour ☀"
    assert span.outputs["model"] == "m-2024"
    assert span.attributes["mlflow.llm.model"] == "m-2024"
    assert span.attributes["stream.chunk_count"] == 2
    assert span.attributes["stream.completed"] is True
    assert span.attributes["http.response.header.x-request-id"] == "req_42"


def test_async_stream_bytes_and_boundaries_are_unchanged(
    httpx_mock: HTTPXMock, experiment: str
) -> None:
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream(PIECES))

    async def main() -> list[bytes]:
        async with TracedAsyncClient() as client, client.stream("POST", URL, json=REQUEST) as r:
            return [piece async for piece in r.aiter_raw()]

    assert asyncio.run(main()) == PIECES
    assert only_llm_span(experiment).outputs["choices"][0]["message"]["content"] == "Bonjour ☀"


def test_raw_httpx_call_to_a_vllm_style_server_is_traced(
    httpx_mock: HTTPXMock, experiment: str
) -> None:
    httpx_mock.add_response(url="http://gpu-box:8000/v1/chat/completions", json=COMPLETION)
    body = {"model": "meta-llama/Llama-3-8B", "messages": [{"role": "user", "content": "hi"}]}
    response = TracedClient().post("http://gpu-box:8000/v1/chat/completions", json=body)
    assert response.json() == COMPLETION
    span = only_llm_span(experiment)
    assert span.name == "chat meta-llama/Llama-3-8B"
    assert span.inputs == body
    assert span.outputs == COMPLETION
    assert span.attributes["server.address"] == "gpu-box"
    assert span.attributes["server.port"] == 8000
    assert span.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 3,
        "output_tokens": 1,
        "total_tokens": 4,
    }


def test_compressed_body_reaches_the_caller_decoded_and_the_span_parsed(
    httpx_mock: HTTPXMock, experiment: str
) -> None:
    raw = gzip.compress(json.dumps(COMPLETION).encode())
    pieces = [raw[:7], raw[7:20], raw[20:]]
    httpx_mock.add_response(
        url=URL,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        stream=IteratorStream(pieces),
    )
    with TracedClient() as client, client.stream("POST", URL, json=REQUEST) as response:
        assert list(response.iter_raw()) == pieces
    span = only_llm_span(experiment)
    assert span.outputs == COMPLETION


def test_non_llm_paths_pass_through_untraced(httpx_mock: HTTPXMock, experiment: str) -> None:
    httpx_mock.add_response(url="http://llm.test/v1/models", json={"data": []})
    httpx_mock.add_response(url="http://llm.test/v1/chat/completions", method="GET", json={})
    with TracedClient() as client:
        assert client.get("http://llm.test/v1/models").json() == {"data": []}
        assert client.get(URL).json() == {}
    assert read_spans(experiment) == []


def test_disabled_tracer_records_nothing(
    httpx_mock: HTTPXMock, experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACER_ENABLED", "false")
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream(PIECES))
    with TracedClient() as client, client.stream("POST", URL, json=REQUEST) as response:
        assert list(response.iter_raw()) == PIECES
    assert read_spans(experiment) == []


def test_credentials_are_never_recorded(httpx_mock: HTTPXMock, experiment: str) -> None:
    secrets = ["sk-BEARER-1", "AZURE-KEY-2", "QUERY-KEY-3", "USERINFO-4", "COOKIE-5", "CODE-6"]
    url = f"http://user:{secrets[3]}@llm.test/v1/chat/completions?api-key={secrets[2]}&code={secrets[5]}&v=1"
    httpx_mock.add_response(json=COMPLETION)
    with TracedClient() as client:
        client.post(
            url,
            json=REQUEST | {"stream": False},
            headers={
                "Authorization": f"Bearer {secrets[0]}",
                "api-key": secrets[1],
                "Cookie": f"session={secrets[4]}",
                "Idempotency-Key": "idem-1",
            },
        )
    span = only_llm_span(experiment)
    dumped = json.dumps(span.to_dict())
    for secret in secrets:
        assert secret not in dumped
    assert span.attributes["url.full"] == (
        "http://llm.test/v1/chat/completions?api-key=REDACTED&code=REDACTED&v=1"
    )
    assert span.attributes["http.request.header.idempotency-key"] == "idem-1"


def test_streamed_upload_is_traced_and_marked(httpx_mock: HTTPXMock, experiment: str) -> None:
    httpx_mock.add_response(url=URL, json=COMPLETION)

    def upload() -> Iterator[bytes]:
        yield json.dumps(REQUEST).encode()

    with TracedClient() as client:
        client.post(URL, content=upload())
    span = only_llm_span(experiment)
    assert span.inputs is None
    assert span.outputs == COMPLETION
    assert span.attributes["tracer.problems"] == [
        "request body was not available (streamed upload)"
    ]


def test_html_error_page_from_a_proxy(httpx_mock: HTTPXMock, experiment: str) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    httpx_mock.add_response(url=URL, status_code=502, html=page)
    with TracedClient() as client:
        response = client.post(URL, json=REQUEST)
    assert response.text == page
    span = only_llm_span(experiment)
    assert span.status.status_code == "ERROR"
    assert span.status.description == "HTTP 502"
    assert span.outputs == {"text": page}
    assert span.attributes["tracer.problems"] == ["response body is not JSON"]


@pytest.mark.parametrize("streamed", [False, True])
def test_body_over_the_limit_is_passed_through_unparsed(
    httpx_mock: HTTPXMock, experiment: str, streamed: bool
) -> None:
    body = json.dumps(COMPLETION | {"padding": "x" * 5000}).encode()
    if streamed:
        httpx_mock.add_response(url=URL, stream=IteratorStream([body[:100], body[100:]]))
    else:
        httpx_mock.add_response(url=URL, content=body)
    with TracedClient(config=TracerConfig(max_body_bytes=1000)) as client:
        response = client.post(URL, json=REQUEST | {"stream": False})
    assert response.content == body
    span = only_llm_span(experiment)
    assert span.outputs is None
    assert span.attributes["tracer.problems"] == [
        "response body exceeds TRACER_MAX_BODY_BYTES (1000); not parsed"
    ]


def test_request_over_the_limit_is_not_parsed(httpx_mock: HTTPXMock, experiment: str) -> None:
    httpx_mock.add_response(url=URL, json=COMPLETION)
    big = REQUEST | {"messages": [{"role": "user", "content": "y" * 5000}], "stream": False}
    with TracedClient(config=TracerConfig(max_body_bytes=1000)) as client:
        client.post(URL, json=big)
    span = only_llm_span(experiment)
    assert span.inputs is None
    assert span.name == "chat"
    assert span.attributes["tracer.problems"][0].startswith("request body of ")


def test_content_capture_off_keeps_metadata_only(httpx_mock: HTTPXMock, experiment: str) -> None:
    httpx_mock.add_response(url=URL, json=COMPLETION)
    with TracedClient(config=TracerConfig(capture_content=False)) as client:
        client.post(URL, json=REQUEST | {"stream": False, "temperature": 0.5})
    span = only_llm_span(experiment)
    dumped = json.dumps(span.to_dict())
    assert "Salut" not in dumped
    assert '"hi"' not in dumped
    assert span.inputs == {"model": "m", "stream": False, "temperature": 0.5}
    assert span.outputs["choices"] == [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}
    ]
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 4


# --- fail-open in production, fail-loud in tests ---------------------------------------------


def broken(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("tracer bug")


def test_internal_error_mid_stream_is_logged_once_and_the_caller_unharmed(
    httpx_mock: HTTPXMock,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(tracer.apis.chat.ChatStream, "add", broken)
    for _ in range(3):
        httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream(PIECES))
    caplog.set_level(logging.DEBUG, logger="tracer")
    with TracedClient(config=TracerConfig(strict=False)) as client:
        for _ in range(3):
            with client.stream("POST", URL, json=REQUEST) as response:
                assert list(response.iter_raw()) == PIECES
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "tracer bug" in warnings[0].getMessage()
    spans = read_spans(experiment)
    assert len(spans) == 3  # each still ended, marked, with what it had
    assert all("tracer internal error" in s.attributes["tracer.problems"][0] for s in spans)


def test_internal_error_starting_a_span_leaves_the_call_untraced(
    httpx_mock: HTTPXMock,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A root span is started when the request is sent as a pending one (spans.pending).
    monkeypatch.setattr(tracer.spans, "pending", broken)
    httpx_mock.add_response(url=URL, json=COMPLETION)

    async def main() -> Any:
        async with TracedAsyncClient(config=TracerConfig(strict=False)) as client:
            return (await client.post(URL, json=REQUEST)).json()

    with caplog.at_level(logging.WARNING, logger="tracer"):
        assert asyncio.run(main()) == COMPLETION
    assert "starting a span" in caplog.text
    assert read_spans(experiment) == []


def test_strict_mode_raises_internal_errors(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracer.apis.chat.ChatStream, "add", broken)
    httpx_mock.add_response(url=URL, headers=SSE_HEADERS, stream=IteratorStream(PIECES))
    with (
        TracedClient(config=TracerConfig(strict=True)) as client,
        client.stream("POST", URL, json=REQUEST) as response,
        pytest.raises(RuntimeError, match="tracer bug"),
    ):
        list(response.iter_raw())


def test_custom_route_for_a_gateway_path(
    httpx_mock: HTTPXMock, experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACER_ROUTES", json.dumps({r"/gateway/llm/generate$": "chat"}))
    httpx_mock.add_response(url="http://gw.test/gateway/llm/generate", json=COMPLETION)
    with TracedClient() as client:
        client.post("http://gw.test/gateway/llm/generate", json=REQUEST | {"stream": False})
    span = only_llm_span(experiment)
    assert span.outputs == COMPLETION
    assert span.attributes["tracer.api"] == "chat.completions"


def test_span_still_ends_when_working_out_its_result_fails(
    httpx_mock: HTTPXMock, experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracer.apis.chat.ChatCompletions, "summarize", broken)
    httpx_mock.add_response(url=URL, json=COMPLETION)
    with TracedClient(config=TracerConfig(strict=False)) as client:
        assert client.post(URL, json=REQUEST | {"stream": False}).json() == COMPLETION
    span = only_llm_span(experiment)
    assert span.end_time_ns is not None
    assert span.outputs is None
    assert span.attributes["tracer.problems"] == ["tracer internal error: RuntimeError: tracer bug"]
