"""``tracer.instrument()``: one line, and every LLM call of the process is traced, whatever
client made it. Each SDK here builds its own default client (no ``http_client`` passed),
against the local server; the spans are read back from the MLflow store: exactly one LLM
span per call, holding the answer the caller got.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from types import ModuleType

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import types
from hypothesis import given
from hypothesis import strategies as st
from llm_devserver import DevServer
from readback import llm_spans, read_spans
from sdk import API_KEY

import tracer

MODEL = "gpt-4o-mini"
QUESTION = "What is the capital of France?"
ASK = [{"role": "user", "content": QUESTION}]
CLAUDE = "claude-sonnet-4-5"


def one_llm_span(experiment: str):
    spans = llm_spans(experiment)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# --------------------------------------------------------------------------------------------
# openai: sync, stream, async, a client built before the line
# --------------------------------------------------------------------------------------------


def test_openai_client_built_before_the_line(server: DevServer, experiment: str) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    tracer.instrument()
    try:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0.2
        )
    finally:
        tracer.uninstrument()
    span = one_llm_span(experiment)
    assert span.name == f"chat {MODEL}"
    assert span.inputs["messages"][0]["content"] == QUESTION
    assert span.outputs["choices"][0]["message"]["content"] == reply.choices[0].message.content
    assert span.attributes["temperature"] == 0.2


def test_openai_stream(server: DevServer, experiment: str, instrumented: None) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    span = one_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == text
    assert span.attributes["stream.completed"] is True
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] > 0


def test_openai_async(server: DevServer, experiment: str, instrumented: None) -> None:
    async def call() -> str:
        async with openai.AsyncOpenAI(
            api_key=API_KEY, base_url=server.base_url, max_retries=0
        ) as client:
            reply = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": QUESTION}]
            )
            return reply.choices[0].message.content or ""

    text = asyncio.run(call())
    span = one_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == text


def test_openai_with_httpx_client(server: DevServer, experiment: str, instrumented: None) -> None:
    """openai>=3 builds on httpx2 by default; an httpx client handed in is reached too."""
    client = openai.OpenAI(
        api_key=API_KEY, base_url=server.base_url, max_retries=0, http_client=httpx.Client()
    )
    reply = client.embeddings.create(model="text-embedding-3-small", input="hello")
    span = one_llm_span(experiment)
    assert span.span_type == "EMBEDDING"
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == reply.usage.prompt_tokens


# --------------------------------------------------------------------------------------------
# anthropic: plain and messages.stream
# --------------------------------------------------------------------------------------------


def test_anthropic(server: DevServer, experiment: str, instrumented: None) -> None:
    with anthropic.Anthropic(api_key="sk-ant-x", base_url=server.url, max_retries=0) as client:
        message = client.messages.create(model=CLAUDE, max_tokens=128, messages=ASK)
    span = one_llm_span(experiment)
    assert span.outputs["content"][0]["text"] == message.content[0].text
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == message.usage.input_tokens


def test_anthropic_messages_stream(server: DevServer, experiment: str, instrumented: None) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-x", base_url=server.url, max_retries=0)
    with client, client.messages.stream(model=CLAUDE, max_tokens=128, messages=ASK) as stream:
        message = stream.get_final_message()
    span = one_llm_span(experiment)
    assert span.outputs["content"][0]["text"] == message.content[0].text
    assert span.attributes["stream.completed"] is True


# --------------------------------------------------------------------------------------------
# google-genai: sync (httpx), stream, async over aiohttp
# --------------------------------------------------------------------------------------------

FLASH = "gemini-2.5-flash"


def gemini(server: DevServer) -> genai.Client:
    return genai.Client(api_key="AIza-key", http_options=types.HttpOptions(base_url=server.url))


def test_gemini_sync(server: DevServer, experiment: str, instrumented: None) -> None:
    client = gemini(server)  # kept: a genai.Client closes its HTTP client when collected
    response = client.models.generate_content(model=FLASH, contents=QUESTION)
    span = one_llm_span(experiment)
    assert span.name == f"chat {FLASH}"
    assert span.outputs["candidates"][0]["content"]["parts"][-1]["text"] == response.text


def test_gemini_stream(server: DevServer, experiment: str, instrumented: None) -> None:
    client = gemini(server)
    chunks = list(client.models.generate_content_stream(model=FLASH, contents=QUESTION))
    text = "".join(c.text or "" for c in chunks)
    span = one_llm_span(experiment)
    parts = span.outputs["candidates"][0]["content"]["parts"]
    assert "".join(p.get("text", "") for p in parts) == text
    assert span.attributes["stream.completed"] is True


def test_gemini_async_over_aiohttp(server: DevServer, experiment: str, instrumented: None) -> None:
    client = gemini(server)
    assert client._api_client._use_aiohttp()  # the SDK's own choice: aiohttp is installed

    async def call() -> tuple[str, str]:
        plain = await client.aio.models.generate_content(model=FLASH, contents=QUESTION)
        streamed = [
            c.text or ""
            async for c in await client.aio.models.generate_content_stream(
                model=FLASH, contents=QUESTION
            )
        ]
        return plain.text or "", "".join(streamed)

    plain, streamed = asyncio.run(call())
    spans = llm_spans(experiment)
    assert len(spans) == 2, [s.name for s in spans]
    first, second = spans
    assert first.outputs["candidates"][0]["content"]["parts"][-1]["text"] == plain
    parts = second.outputs["candidates"][0]["content"]["parts"]
    assert "".join(p.get("text", "") for p in parts) == streamed
    assert second.attributes["stream.completed"] is True
    assert second.attributes["stream.chunk_count"] >= 2


# --------------------------------------------------------------------------------------------
# one span, never two; nothing else touched
# --------------------------------------------------------------------------------------------


def test_traced_client_gives_one_span(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    client = openai.OpenAI(
        api_key=API_KEY, base_url=server.base_url, max_retries=0, http_client=tracer.TracedClient()
    )
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert len(llm_spans(experiment)) == 1


def test_non_llm_requests_pass_untraced(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    with httpx2.Client() as client:
        assert client.get(f"{server.url}/v1/models").status_code == 200
    assert read_spans(experiment) == []


def test_uninstrument_restores_exactly() -> None:
    originals = {
        (cls, name): cls.__dict__.get(name)
        for cls, name in [
            (httpx.Client, "_transport_for_url"),
            (httpx.AsyncClient, "_transport_for_url"),
            (httpx2.Client, "_transport_for_url"),
            (httpx2.AsyncClient, "_transport_for_url"),
        ]
    }
    tracer.instrument()
    tracer.instrument()
    assert tracer.instrumented()
    assert all(cls.__dict__.get(name) is not f for (cls, name), f in originals.items())
    tracer.uninstrument()
    tracer.uninstrument()
    assert not tracer.instrumented()
    assert all(cls.__dict__.get(name) is f for (cls, name), f in originals.items())


def test_non_llm_post_goes_through_byte_for_byte(server: DevServer, instrumented: None) -> None:
    """A request no route matches reaches the server as it would without the tracer: no
    trace header added, the same body."""
    body = b'{"purpose": "fine-tune", "x": [1, 2, 3]}'
    with httpx.Client() as client:
        tracer.uninstrument()
        client.post(f"{server.base_url}/files", content=body, headers={"x-k": "1"})
        tracer.instrument()
        client.post(f"{server.base_url}/files", content=body, headers={"x-k": "1"})
    bare, through = server.requests[-2:]
    assert through.body == bare.body == body
    assert through.headers == bare.headers
    assert "traceparent" not in through.headers


# --------------------------------------------------------------------------------------------
# aiohttp sessions, used directly
# --------------------------------------------------------------------------------------------


def test_aiohttp_session_built_before_the_line(server: DevServer, experiment: str) -> None:
    import aiohttp

    seen: list[str] = []

    async def own_middleware(request, handler):  # the session's own, kept
        seen.append(str(request.url))
        return await handler(request)

    async def call() -> tuple[str, str]:
        async with aiohttp.ClientSession(middlewares=(own_middleware,)) as session:
            tracer.instrument()
            body = {"model": MODEL, "messages": ASK}
            async with session.post(f"{server.base_url}/chat/completions", json=body) as r:
                plain = (await r.json())["choices"][0]["message"]["content"]
            body = {**body, "stream": True}
            text = []
            async with session.post(f"{server.base_url}/chat/completions", json=body) as r:
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        delta = json.loads(line[6:])["choices"][0]["delta"]
                        text.append(delta.get("content") or "")
            return plain, "".join(text)

    try:
        plain, streamed = asyncio.run(call())
    finally:
        tracer.uninstrument()
    assert len(seen) == 2
    first, second = llm_spans(experiment)
    assert first.outputs["choices"][0]["message"]["content"] == plain
    assert second.outputs["choices"][0]["message"]["content"] == streamed
    assert second.attributes["stream.completed"] is True
    assert first.attributes["http.response.status_code"] == 200


def test_aiohttp_stream_released_early(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    import aiohttp

    async def call() -> bytes:
        async with aiohttp.ClientSession() as session:
            body = {"model": MODEL, "messages": ASK, "stream": True}
            async with session.post(f"{server.base_url}/chat/completions", json=body) as r:
                first = await r.content.readline()
                assert await r.content.readline() == b"\n"  # one whole event read,
                return first  # then the response is released, the rest unread

    first = asyncio.run(call())
    assert first.startswith(b"data: ")
    span = one_llm_span(experiment)
    assert span.attributes["stream.completed"] is False
    assert span.status.status_code == "OK"


def test_openai_over_aiohttp_gives_one_span(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    """openai's aiohttp-backed httpx client: the httpx layer and the aiohttp layer both see
    the call; it is recorded once."""

    async def call() -> str:
        async with openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url=server.base_url,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        ) as client:
            reply = await client.chat.completions.create(model=MODEL, messages=ASK)
            return reply.choices[0].message.content or ""

    text = asyncio.run(call())
    span = one_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == text


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_instrument_twice_still_one_span_and_the_newest_config(
    server: DevServer, experiment: str
) -> None:
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    tracer.instrument()
    try:
        tracer.instrument()
        tracer.instrument(tracer.TracerConfig(capture_content=False))
        client.chat.completions.create(model=MODEL, messages=ASK)
    finally:
        tracer.uninstrument()
    span = one_llm_span(experiment)
    assert QUESTION not in json.dumps(span.inputs)


def test_uninstrument_without_instrument_changes_nothing(
    server: DevServer, experiment: str
) -> None:
    before = httpx2.Client.__dict__["_transport_for_url"]
    tracer.uninstrument()
    assert httpx2.Client.__dict__["_transport_for_url"] is before
    assert not tracer.instrumented()
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=ASK)
    assert llm_spans(experiment) == []


class _Opaque(httpx.BaseTransport):
    """A working transport the tracer cannot look at: asking its class raises."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("opaque proxy")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)


def test_transport_that_cannot_be_wrapped(
    server: DevServer, experiment: str, instrumented: None, caplog: pytest.LogCaptureFixture
) -> None:
    import tracer.transport  # noqa: F401  (so the already-traced check runs)

    client = openai.OpenAI(
        api_key=API_KEY,
        base_url=server.base_url,
        max_retries=0,
        http_client=httpx.Client(transport=_Opaque()),
    )
    with caplog.at_level(logging.DEBUG, logger="tracer"):
        for _ in range(2):
            reply = client.chat.completions.create(model=MODEL, messages=ASK)
            assert reply.choices[0].message.content
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "_Opaque" in warnings[0].getMessage()
    assert llm_spans(experiment) == []


def test_aiohttp_without_middlewares_is_left_alone_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = ModuleType("aiohttp")  # as aiohttp before 3.12: no client middlewares

    class ClientSession:
        def _request(self, method: str, url: str, **kwargs: object) -> str:
            return "sent"

    old.ClientSession = ClientSession  # type: ignore[attr-defined]
    old.__version__ = "3.11.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aiohttp", old)
    original = ClientSession.__dict__["_request"]
    with caplog.at_level(logging.WARNING, logger="tracer"):
        tracer.instrument()
        try:
            assert ClientSession.__dict__["_request"] is original
            assert ClientSession()._request("POST", "http://x/v1/chat/completions") == "sent"
            assert httpx.Client.__dict__["_transport_for_url"].__module__ == (
                "tracer.instrumentation"
            )
        finally:
            tracer.uninstrument()
    (warning,) = [r.getMessage() for r in caplog.records if "aiohttp" in r.getMessage()]
    assert "aiohttp 3.11.0" in warning
    assert "3.12" in warning


def test_instrument_and_uninstrument_from_many_threads(server: DevServer, experiment: str) -> None:
    """Racing calls leave the libraries either fully patched or exactly as they were, and
    requests made meanwhile all succeed."""
    original = httpx2.Client.__dict__["_transport_for_url"]
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        try:
            for i in range(20):
                (tracer.instrument if (i + n) % 2 else tracer.uninstrument)()
            client.chat.completions.create(model=MODEL, messages=ASK)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    if tracer.instrumented():
        patched = httpx2.Client.__dict__["_transport_for_url"]
        assert patched is not original
        assert patched.__wrapped__ is original
    tracer.uninstrument()
    assert httpx2.Client.__dict__["_transport_for_url"] is original
    assert len(llm_spans(experiment)) <= 8


def test_uninstrument_keeps_a_patch_made_on_top(server: DevServer, experiment: str) -> None:
    """Another instrumentation that wrapped the method after ours keeps its wrapper; ours,
    left inside it, passes every request through."""
    original = httpx.Client.__dict__["_transport_for_url"]
    tracer.instrument()
    ours = httpx.Client.__dict__["_transport_for_url"]

    def theirs(self: httpx.Client, url: httpx.URL) -> httpx.BaseTransport:
        return ours(self, url)

    httpx.Client._transport_for_url = theirs  # type: ignore[method-assign]
    try:
        tracer.uninstrument()
        assert httpx.Client.__dict__["_transport_for_url"] is theirs
        with httpx.Client() as client:
            reply = client.post(
                f"{server.base_url}/chat/completions", json={"model": MODEL, "messages": ASK}
            )
        assert reply.status_code == 200
        assert llm_spans(experiment) == []
    finally:
        httpx.Client._transport_for_url = original  # type: ignore[method-assign]


SEGMENTS = [
    *("v1", "chat", "completions", "embeddings", "api", "v2", "embed", "models", "x", ""),
    *("serving-endpoints", "invocations", "gemini-2.5-flash:generateContent", "messages"),
]


@given(
    st.lists(
        st.sampled_from(SEGMENTS),
        max_size=5,
    ).map(lambda parts: "/" + "/".join(parts))
    | st.text(alphabet="/abcdemos:v12", max_size=30)
)
def test_the_one_pattern_agrees_with_the_route_table(path: str) -> None:
    """The single search that tells non-LLM requests apart never rejects a routed path."""
    from tracer import routes

    anywhere = any(route.pattern.search(path) for route in routes.ROUTES)
    assert (routes.ANY_ROUTE.search(path) is not None) == anywhere


@pytest.mark.parametrize("decompress", [True, False])
def test_aiohttp_compressed_answer(
    server: DevServer, experiment: str, instrumented: None, decompress: bool
) -> None:
    """A gzip answer: aiohttp hands it on decoded (its default) or as sent
    (``auto_decompress=False``); the span holds the decoded answer either way."""
    import gzip

    import aiohttp

    async def call() -> bytes:
        async with aiohttp.ClientSession(auto_decompress=decompress) as session:
            body = {"model": MODEL, "messages": ASK}
            headers = {"x-devserver-encoding": "gzip"}
            url = f"{server.base_url}/chat/completions"
            async with session.post(url, json=body, headers=headers) as r:
                assert r.headers["content-encoding"] == "gzip"
                return await r.read()

    raw = asyncio.run(call())
    answer = json.loads(raw if decompress else gzip.decompress(raw))
    span = one_llm_span(experiment)
    assert (
        span.outputs["choices"][0]["message"]["content"]
        == (answer["choices"][0]["message"]["content"])
    )
    assert "tracer.problems" not in span.attributes


class _Counting(httpx.BaseTransport):
    """A custom transport an SDK or framework might mount (LiteLLM mounts its own)."""

    def __init__(self) -> None:
        self.sent = 0
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return self._inner.handle_request(request)


def test_mounted_and_custom_transports(
    server: DevServer, experiment: str, instrumented: None
) -> None:
    custom = _Counting()
    with httpx.Client(mounts={server.url: custom}, transport=httpx.MockTransport(None)) as c:
        client = openai.OpenAI(
            api_key=API_KEY, base_url=server.base_url, max_retries=0, http_client=c
        )
        reply = client.chat.completions.create(model=MODEL, messages=ASK)
    assert custom.sent == 1
    span = one_llm_span(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == reply.choices[0].message.content
