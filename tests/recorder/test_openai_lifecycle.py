"""Errors, nesting under @mlflow.trace, late consumption and abandoned streams: every span
ends exactly once with the right status and the partial output."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import httpx
import mlflow
import openai
import pytest
from llm_devserver import DevServer
from mlflow.entities import SpanType
from openai import AsyncOpenAI, OpenAI
from processes import free_port
from readback import only_llm_span, read_spans, read_traces
from sdk import API_KEY, Chat, joined_content

from tracer import TracedAsyncClient, TracedClient, export

FULL = "The capital of France is Paris."


@pytest.fixture(params=["sync", "async", "sync-httpx2", "async-httpx2"])
def chat(request: pytest.FixtureRequest, server: DevServer) -> Chat:
    return Chat(request.param, server.base_url)


def httpx2_error() -> type[Exception]:
    import httpx2

    return httpx2.RemoteProtocolError


def exception_events(span: Any) -> list[dict[str, Any]]:
    return [e.attributes for e in span.events if e.name == "exception"]


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, openai.AuthenticationError, "Incorrect API key provided"),
        (400, openai.BadRequestError, ""),
        (429, openai.RateLimitError, ""),
        (500, openai.InternalServerError, ""),
    ],
)
def test_http_errors_give_error_spans(
    chat: Chat, experiment: str, status: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        chat.create(extra_headers={"x-devserver-status": str(status)})
    span = only_llm_span(experiment)
    body = raised.value.body  # type: ignore[attr-defined]
    assert span.status.status_code == "ERROR"
    assert span.attributes["http.response.status_code"] == status
    assert span.outputs == {"error": body}
    assert message in body["message"]
    assert span.status.description == body["message"]
    assert exception_events(span) == [
        {"exception.type": f"HTTP {status}", "exception.message": body["message"]}
    ]


def test_error_event_mid_stream(chat: Chat, experiment: str) -> None:
    with pytest.raises(openai.APIError, match="server had an error"):
        chat.create(stream=True, extra_headers={"x-devserver-stream-error-after": "3"})
    span = only_llm_span(experiment)
    assert span.status.status_code == "ERROR"
    assert "server had an error" in span.status.description
    assert span.attributes["stream.completed"] is False
    assert span.outputs["choices"][0]["message"]["content"]  # the partial output is kept
    assert span.outputs["error"]["type"] == "server_error"


def test_server_disconnect_mid_stream(chat: Chat, experiment: str) -> None:
    # openai>=3 wraps the transport error; earlier versions let httpx's own through.
    with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError, httpx2_error())):
        chat.create(stream=True, extra_headers={"x-devserver-disconnect-after": "3"})
    span = only_llm_span(experiment)
    assert span.status.status_code == "ERROR"
    assert span.attributes["stream.completed"] is False
    assert span.attributes["stream.chunk_count"] == 3
    assert len(exception_events(span)) == 1


def test_connect_error_is_recorded_and_reraised(experiment: str) -> None:
    chat = Chat("sync", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(openai.APIConnectionError) as raised:
        chat.create()
    assert raised.value.__cause__.__class__.__name__ == "ConnectError"
    span = only_llm_span(experiment)
    assert span.status.status_code == "ERROR"
    assert exception_events(span)[0]["exception.type"] == "ConnectError"
    assert "http.response.status_code" not in span.attributes
    assert span.outputs is None


def test_read_timeout_mid_stream(chat: Chat, experiment: str) -> None:
    with pytest.raises((openai.APITimeoutError, httpx.ReadTimeout)):
        chat.create(stream=True, timeout=0.3, extra_headers={"x-devserver-chunk-delay-ms": "1000"})
    span = only_llm_span(experiment)
    assert span.status.status_code == "ERROR"
    assert exception_events(span)[0]["exception.type"] == "ReadTimeout"
    assert span.attributes["stream.completed"] is False


def test_each_retry_attempt_is_its_own_span(chat: Chat, experiment: str) -> None:
    @mlflow.trace(span_type=SpanType.AGENT)
    def agent() -> Any:
        return chat.create(max_retries=2, extra_headers={"x-devserver-fail-attempts": "2"})

    agent()
    (trace,) = read_traces(experiment)
    root = trace.data.spans[0]
    spans = sorted(
        (s for s in trace.data.spans if s.span_type == "CHAT_MODEL"), key=lambda s: s.start_time_ns
    )
    assert [s.parent_id for s in spans] == [root.span_id] * 3
    assert [s.attributes["http.request.resend_count"] for s in spans] == [0, 1, 2]
    assert [s.status.status_code for s in spans] == ["ERROR", "ERROR", "OK"]
    assert [s.attributes["http.response.status_code"] for s in spans] == [500, 500, 200]


def test_nested_under_sync_trace(server: DevServer, experiment: str) -> None:
    client = OpenAI(api_key=API_KEY, base_url=server.base_url, http_client=TracedClient())

    @mlflow.trace(span_type=SpanType.AGENT)
    def agent(question: str) -> str:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content or ""

    assert agent("What is the capital of France?") == FULL
    (trace,) = read_traces(experiment)
    root, llm = trace.data.spans
    assert root.span_type == "AGENT"
    assert llm.parent_id == root.span_id
    assert llm.trace_id == root.trace_id


def test_nested_under_async_trace_with_concurrent_calls(server: DevServer, experiment: str) -> None:
    async def main() -> list[str]:
        client = AsyncOpenAI(
            api_key=API_KEY, base_url=server.base_url, http_client=TracedAsyncClient()
        )

        @mlflow.trace(name="ask")
        async def ask(question: str) -> str:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}], stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        @mlflow.trace(span_type=SpanType.AGENT)
        async def agent() -> list[str]:
            return await asyncio.gather(ask("one"), ask("two"), ask("three"))

        try:
            return await agent()
        finally:
            await client.close()

    answers = asyncio.run(main())
    (trace,) = read_traces(experiment)
    by_id = {s.span_id: s for s in trace.data.spans}
    llm_spans = [s for s in trace.data.spans if s.span_type == "CHAT_MODEL"]
    assert len(llm_spans) == 3
    for span in llm_spans:
        parent = by_id[span.parent_id]
        assert parent.name == "ask"
        question = span.inputs["messages"][0]["content"]
        assert parent.inputs == {"question": question}
        assert span.outputs["choices"][0]["message"]["content"] == parent.outputs
    assert sorted(answers) == sorted(
        s.outputs["choices"][0]["message"]["content"] for s in llm_spans
    )


def test_stream_consumed_after_the_traced_function_returned(
    server: DevServer, experiment: str
) -> None:
    client = OpenAI(api_key=API_KEY, base_url=server.base_url, http_client=TracedClient())

    @mlflow.trace(name="make_stream")
    def make_stream() -> Any:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
        )

    stream = make_stream()
    text = joined_content(list(stream))
    assert text == FULL
    (trace,) = read_traces(experiment)
    root = next(s for s in trace.data.spans if s.name == "make_stream")
    llm = next(s for s in trace.data.spans if s.span_type == "CHAT_MODEL")
    assert llm.parent_id == root.span_id
    assert llm.end_time_ns > root.end_time_ns
    assert llm.outputs["choices"][0]["message"]["content"] == FULL
    assert llm.attributes["stream.completed"] is True


def slow_stream_kwargs() -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Tell me something long"}],
        "stream": True,
    }


def assert_abandoned(experiment: str, seen: int, dropped: bool | None = False) -> None:
    """The span of a stream left after ``seen`` chunks; ``dropped``: without being closed
    (collected), whose span the tracer's reaper thread ends a moment later, which
    ``tracer.export.flush()`` waits for; ``None``: either (the SDK may close the response as
    its stream is freed, or asyncio a dropped async generator, on the event loop)."""
    if dropped is not False:
        export.flush()
    span = only_llm_span(experiment)
    assert span.status.status_code == "OK"
    assert span.attributes["stream.completed"] is False
    if dropped is not None:
        assert span.attributes.get("stream.abandoned") is (True if dropped else None)
    assert span.attributes["stream.chunk_count"] >= seen
    partial = span.outputs["choices"][0]["message"]["content"]
    assert partial
    assert span.end_time_ns is not None


@pytest.mark.parametrize("how", ["break_then_close", "context_manager", "response_close", "gc"])
def test_abandoned_sync_stream_ends_its_span(server: DevServer, experiment: str, how: str) -> None:
    client = OpenAI(api_key=API_KEY, base_url=server.base_url, http_client=TracedClient())
    if how == "context_manager":
        with client.chat.completions.create(**slow_stream_kwargs()) as stream:
            for i, _ in enumerate(stream):
                if i == 3:
                    break
    else:
        stream = client.chat.completions.create(**slow_stream_kwargs())
        iterator = iter(stream)
        for _ in range(4):
            next(iterator)
        if how == "break_then_close":
            stream.close()
        elif how == "response_close":
            stream.response.close()
        else:
            del stream, iterator
            gc.collect()
    # How the SDK's dropped stream goes (its finalizer or its own close of the response)
    # depends on the SDK's version (make compat); stream.abandoned: test_never_hang.py.
    assert_abandoned(experiment, 4, dropped=None if how == "gc" else False)


@pytest.mark.parametrize("how", ["break_then_close", "context_manager", "gc", "cancelled"])
def test_abandoned_async_stream_ends_its_span(server: DevServer, experiment: str, how: str) -> None:
    async def main() -> None:
        client = AsyncOpenAI(
            api_key=API_KEY, base_url=server.base_url, http_client=TracedAsyncClient()
        )
        if how == "context_manager":
            async with await client.chat.completions.create(**slow_stream_kwargs()) as stream:
                i = 0
                async for _ in stream:
                    i += 1
                    if i == 4:
                        break
        elif how == "cancelled":

            async def consume() -> None:
                stream = await client.chat.completions.create(
                    **slow_stream_kwargs(), extra_headers={"x-devserver-chunk-delay-ms": "50"}
                )
                async for _ in stream:
                    pass

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            stream = await client.chat.completions.create(**slow_stream_kwargs())
            iterator = stream.__aiter__()
            for _ in range(4):
                await iterator.__anext__()
            if how == "break_then_close":
                await stream.close()
            else:
                del stream, iterator
                gc.collect()
        await client.close()

    asyncio.run(main())
    gc.collect()
    if how == "cancelled":
        span = only_llm_span(experiment)
        assert span.status.status_code == "ERROR"
        assert span.attributes["stream.completed"] is False
        assert span.outputs["choices"][0]["message"]["content"]
    else:
        assert_abandoned(experiment, 4, dropped=None if how == "gc" else False)


def test_sdk_closing_right_after_done_counts_as_completed(chat: Chat, experiment: str) -> None:
    # openai 3.x closes the response as soon as it sees [DONE], without reading to EOF.
    chunks = chat.create(stream=True)
    span = only_llm_span(experiment)
    assert span.attributes["stream.completed"] is True
    assert span.outputs["choices"][0]["message"]["content"] == joined_content(chunks)


def test_non_llm_requests_are_not_traced(server: DevServer, experiment: str) -> None:
    client = OpenAI(api_key=API_KEY, base_url=server.base_url, http_client=TracedClient())
    models = client.models.list()
    assert len(models.data) > 0
    assert read_spans(experiment) == []


@pytest.mark.parametrize(
    ("headers", "first_status"),
    [
        ({"x-devserver-status": "429"}, 429),
        ({"x-devserver-status": "503"}, 503),
        ({"x-devserver-fail-mode": "reset"}, None),
    ],
    ids=["rate-limited", "unavailable", "connection-reset"],
)
def test_retries_are_separate_spans_under_one_parent(
    chat: Chat,
    experiment: str,
    server: DevServer,
    headers: dict[str, str],
    first_status: int | None,
) -> None:
    @mlflow.trace(span_type=SpanType.AGENT)
    def agent() -> Any:
        return chat.create(
            max_retries=3, extra_headers={**headers, "x-devserver-fail-attempts": "2"}
        )

    assert agent().choices[0].message.content == FULL
    (trace,) = read_traces(experiment)
    root = next(s for s in trace.data.spans if s.span_type == "AGENT")
    attempts = sorted(
        (s for s in trace.data.spans if s.span_type == "CHAT_MODEL"), key=lambda s: s.start_time_ns
    )
    assert [s.parent_id for s in attempts] == [root.span_id] * 3
    assert [s.attributes["http.request.resend_count"] for s in attempts] == [0, 1, 2]
    assert [s.status.status_code for s in attempts] == ["ERROR", "ERROR", "OK"]
    for failed in attempts[:2]:
        if first_status is None:
            assert "http.response.status_code" not in failed.attributes
            assert exception_events(failed)[0]["exception.type"] == "RemoteProtocolError"
        else:
            assert failed.attributes["http.response.status_code"] == first_status
            assert "retry-after" not in json.dumps(failed.attributes)  # headers are not recorded
    assert attempts[2].outputs["choices"][0]["message"]["content"] == FULL


def test_callers_own_exception_inside_the_loop(chat: Chat, experiment: str) -> None:
    class Boom(Exception):
        pass

    async def consume_async(stream: Any) -> None:
        async for _ in stream:
            raise Boom

    def consume(stream: Any) -> None:
        for _ in stream:
            raise Boom

    with pytest.raises(Boom):
        if chat.mode == "sync":
            with (
                OpenAI(
                    api_key=API_KEY, base_url=chat.base_url, http_client=chat.clients.TracedClient()
                ) as client,
                client.chat.completions.create(**slow_stream_kwargs()) as stream,
            ):
                consume(stream)
        else:

            async def main() -> None:
                async with (
                    AsyncOpenAI(
                        api_key=API_KEY,
                        base_url=chat.base_url,
                        http_client=chat.clients.TracedAsyncClient(),
                    ) as client,
                    await client.chat.completions.create(**slow_stream_kwargs()) as s,
                ):
                    await consume_async(s)

            asyncio.run(main())
    span = only_llm_span(experiment)
    assert span.attributes["stream.completed"] is False
    assert span.attributes["stream.chunk_count"] >= 1
    assert span.status.status_code == "OK"  # the caller stopped reading; the call did not fail
