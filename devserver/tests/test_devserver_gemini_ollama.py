"""The dev server's Google Gemini (Developer API and Vertex AI) and Ollama native protocols,
driven through the real ``google-genai`` and ``ollama`` SDKs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import ollama
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from llm_devserver import DevServer
from llm_devserver.embeddings import embedding_vector
from pydantic import BaseModel

FLASH = "gemini-2.5-flash"
FLASH_2 = "gemini-2.0-flash"  # does not think by default
LLAMA = "llama3.2"
WEATHER_PARAMS: Any = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER_DECL = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters_json_schema=WEATHER_PARAMS,
)
OLLAMA_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": WEATHER_PARAMS,
    },
}


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


def gemini(server: DevServer, headers: dict[str, str] | None = None) -> genai.Client:
    """A Developer API client pointed at the server."""
    options = types.HttpOptions(base_url=server.url, headers=headers)
    return genai.Client(api_key="k", http_options=options)


def vertex(server: DevServer, headers: dict[str, str] | None = None) -> genai.Client:
    """A Vertex AI client (static bearer token, no Google credentials) pointed at the server."""
    return genai.Client(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=Credentials(token="tok"),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=server.url, headers=headers),
    )


def ctl(**headers: str) -> Any:
    """A per-request ``config`` carrying ``x-devserver-*`` headers."""
    return {
        "http_options": {
            "headers": {f"x-devserver-{k.replace('_', '-')}": v for k, v in headers.items()}
        }
    }


def list_of(*texts: str) -> Any:
    """Several texts to embed (typed loosely: the SDK's union rejects a plain list[str])."""
    return list(texts)


def last_request(server: DevServer, prefix: str) -> Any:
    """The most recent recorded request whose path starts with ``prefix``."""
    return next(r for r in reversed(server.requests) if r.path.startswith(prefix))


@pytest.fixture()
def client(server: DevServer) -> genai.Client:
    """A Gemini Developer API client."""
    return gemini(server)


@pytest.fixture()
def olla(server: DevServer) -> Iterator[ollama.Client]:
    """An ollama client."""
    with ollama.Client(host=server.url) as c:
        yield c


# --------------------------------------------------------------------------------------------
# Gemini Developer API
# --------------------------------------------------------------------------------------------


def test_gemini_generate_content(server: DevServer, client: genai.Client) -> None:
    response = client.models.generate_content(
        model=FLASH, contents="What is the capital of France?"
    )
    assert response.text == "The capital of France is Paris."
    cand = response.candidates[0] if response.candidates else None
    assert cand is not None and cand.finish_reason == types.FinishReason.STOP
    assert cand.index == 0 and cand.content is not None and cand.content.role == "model"
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.thoughts_token_count  # 2.5 models think by default, the thoughts are billed
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    assert response.model_version == FLASH and response.response_id
    request = last_request(server, "/v1")
    assert request.path == f"/v1/models/{FLASH}:generateContent"
    assert request.headers["x-goog-api-key"] == "k"
    assert request.json()["contents"] == [
        {"parts": [{"text": "What is the capital of France?"}], "role": "user"}
    ]


def test_gemini_async_generate_and_stream(client: genai.Client) -> None:
    async def run() -> tuple[str | None, list[str]]:
        single = await client.aio.models.generate_content(model=FLASH_2, contents="hi")
        pieces: list[str] = []
        async for chunk in await client.aio.models.generate_content_stream(
            model=FLASH_2, contents="hello there"
        ):
            pieces.append(chunk.text or "")
        return single.text, pieces

    text, pieces = asyncio.run(run())
    assert text == 'You asked: "hi". Here is a thoughtful answer from the local server.'
    assert len(pieces) > 2
    assert "".join(pieces) == (
        'You asked: "hello there". Here is a thoughtful answer from the local server.'
    )


def test_gemini_stream(server: DevServer, client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=FLASH_2, contents="tell me a tale"))
    assert len(chunks) > 2
    text = "".join(c.text or "" for c in chunks)
    assert text == 'You asked: "tell me a tale". Here is a thoughtful answer from the local server.'
    finishes = [c.candidates[0].finish_reason if c.candidates else None for c in chunks]
    assert finishes[-1] == types.FinishReason.STOP and not any(finishes[:-1])
    last = chunks[-1].usage_metadata
    assert last is not None and last.candidates_token_count and last.prompt_token_count
    assert last.total_token_count == last.prompt_token_count + last.candidates_token_count
    first = chunks[0].usage_metadata  # the Developer API repeats the usage so far in each chunk
    assert first is not None and first.candidates_token_count is None
    assert len({c.response_id for c in chunks}) == 1
    assert last_request(server, "/v1").path == (
        f"/v1/models/{FLASH_2}:streamGenerateContent?alt=sse"
    )


def test_gemini_stream_wire_format(server: DevServer) -> None:
    url = f"{server.url}/v1beta/models/{FLASH_2}:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "hello world again"}]}]}
    sse = httpx.post(url, params={"alt": "sse", "key": "k"}, json=body)
    assert sse.headers["content-type"] == "text/event-stream"
    events = sse.text.split("\r\n\r\n")
    assert events[-1] == "" and len(events) > 3
    assert all(e.startswith("data: {") for e in events[:-1])
    # without alt=sse: one JSON array, sent piece by piece
    array = httpx.post(url, headers={"x-goog-api-key": "k"}, json=body)
    assert array.headers["content-type"].startswith("application/json")
    items = json.loads(array.text)
    assert [i["candidates"][0]["content"]["parts"][0]["text"] for i in items] == [
        json.loads(e[len("data: ") :])["candidates"][0]["content"]["parts"][0]["text"]
        for e in events[:-1]
    ]


def test_gemini_function_calling_round_trip(server: DevServer, client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER_DECL])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Tokyo?")])
    first = client.models.generate_content(model=FLASH, contents=[question], config=config)
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]
    assert first.text is None
    cand = first.candidates[0] if first.candidates else None
    assert cand is not None and cand.finish_reason == types.FinishReason.STOP
    assert cand.content is not None and cand.content.parts
    assert cand.content.parts[0].thought_signature  # a thinking model signs its calls
    sent = last_request(server, "/v1").json()
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"

    results = types.Content(
        role="user",
        parts=[
            types.Part.from_function_response(name="get_weather", response={"result": "sunny"}),
            types.Part.from_function_response(name="get_weather", response={"result": "rainy"}),
        ],
    )
    assert cand.content is not None
    second = client.models.generate_content(
        model=FLASH, contents=[question, cand.content, results], config=config
    )
    assert second.function_calls is None
    assert second.text == "Based on the tools: sunny; rainy"

    # streamed: the calls arrive whole, together in one chunk
    chunks = list(
        client.models.generate_content_stream(model=FLASH_2, contents=[question], config=config)
    )
    with_calls = [c for c in chunks if c.function_calls]
    assert len(with_calls) == 1 and len(with_calls[0].function_calls or []) == 2
    assert (
        chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    )


def test_gemini_automatic_function_calling(client: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=[get_weather])
    response = client.models.generate_content(
        model=FLASH, contents="What's the weather in Berlin?", config=config
    )
    assert response.text == "Based on the tools: sunny in Berlin"
    assert len(response.automatic_function_calling_history or []) == 3


def test_gemini_tool_config_modes(client: genai.Client) -> None:
    tools: list[Any] = [types.Tool(function_declarations=[WEATHER_DECL])]

    def mode(value: str) -> types.GenerateContentConfig:
        calling = types.FunctionCallingConfig(mode=value)  # type: ignore[arg-type]
        return types.GenerateContentConfig(
            tools=tools,
            tool_config=types.ToolConfig(function_calling_config=calling),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    off = client.models.generate_content(model=FLASH_2, contents="weather?", config=mode("NONE"))
    assert off.function_calls is None and off.text
    on = client.models.generate_content(model=FLASH_2, contents="hello", config=mode("ANY"))
    assert [c.args for c in on.function_calls or []] == [{"city": "Paris"}]


def test_gemini_thoughts_limits_and_json(client: genai.Client) -> None:
    thinking = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=512)
    )
    response = client.models.generate_content(model=FLASH_2, contents="why?", config=thinking)
    assert response.candidates and response.candidates[0].content
    parts = response.candidates[0].content.parts or []
    assert parts[0].thought is True and parts[0].text and "why?" in parts[0].text
    assert response.text and not response.text.startswith("**")  # .text skips thoughts
    assert response.usage_metadata and response.usage_metadata.thoughts_token_count

    no_thoughts = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=0), max_output_tokens=3
    )
    cut = client.models.generate_content(model=FLASH, contents="hi", config=no_thoughts)
    assert cut.candidates and cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert cut.text == "You asked:"
    assert cut.usage_metadata and cut.usage_metadata.thoughts_token_count is None

    class City(BaseModel):
        city: str
        population: int

    structured = client.models.generate_content(
        model=FLASH_2,
        contents="A big city",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=City
        ),
    )
    assert isinstance(structured.parsed, City)

    two = client.models.generate_content(
        model=FLASH_2,
        contents="hi",
        config=types.GenerateContentConfig(candidate_count=2, stop_sequences=["Here"]),
    )
    assert two.candidates and [c.index for c in two.candidates] == [0, 1]
    texts = [
        (c.content.parts or [types.Part()])[0].text for c in two.candidates if c.content is not None
    ]
    assert texts == ['You asked: "hi". ', '(choice 1) You asked: "hi". ']


def test_gemini_controls(client: genai.Client) -> None:
    reply = client.models.generate_content(
        model=FLASH_2, contents="x", config=ctl(reply="Bonjour%20%C3%A0%20tous")
    )
    assert reply.text == "Bonjour à tous"
    cached = client.models.generate_content(
        model=FLASH_2, contents="x", config=ctl(cached_tokens="40")
    )
    usage = cached.usage_metadata
    assert usage is not None and usage.cached_content_token_count == 40
    assert usage.prompt_token_count == 40
    refused = client.models.generate_content(model=FLASH_2, contents="x", config=ctl(refusal="no"))
    assert refused.candidates and refused.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert refused.text is None

    started = time.monotonic()
    chunks = list(
        client.models.generate_content_stream(
            model=FLASH_2, contents="one two three", config=ctl(chunk_delay_ms="30")
        )
    )
    assert time.monotonic() - started >= 0.03 * len(chunks)


def test_gemini_embeddings(server: DevServer, client: genai.Client) -> None:
    single = client.models.embed_content(
        model="gemini-embedding-001", contents="hello", config={"output_dimensionality": 4}
    )
    assert single.embeddings and single.embeddings[0].values == embedding_vector("hello", 4)
    request = last_request(server, "/v1")
    assert request.path == "/v1/models/gemini-embedding-001:batchEmbedContents"
    assert request.json()["requests"][0]["outputDimensionality"] == 4

    batch = client.models.embed_content(model="text-embedding-004", contents=list_of("a", "b", "c"))
    vectors = [e.values for e in batch.embeddings or []]
    assert vectors == [embedding_vector(t, 8) for t in "abc"]

    # the single-content method, which the SDK does not use for the Developer API
    raw = httpx.post(
        f"{server.url}/v1beta/models/gemini-embedding-001:embedContent?key=k",
        json={"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4},
    )
    assert raw.json() == {"embedding": {"values": embedding_vector("hello", 4)}}


def test_gemini_count_tokens(server: DevServer, client: genai.Client) -> None:
    counted = client.models.count_tokens(model=FLASH, contents="one two three four five six")
    assert counted.total_tokens == 8
    assert last_request(server, "/v1").path == f"/v1/models/{FLASH}:countTokens"


def test_gemini_http_errors(server: DevServer, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=FLASH, contents="x", config=ctl(status="429"))
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    assert limited.value.details["error"]["details"][-1]["retryDelay"] == "0s"

    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="gemini-9", contents="x", config=ctl(status="404"))
    assert missing.value.status == "NOT_FOUND"
    assert missing.value.message and missing.value.message.startswith("models/gemini-9 is not")

    with pytest.raises(errors.ServerError) as broken:
        client.models.embed_content(
            model="text-embedding-004", contents="x", config=ctl(status="500")
        )
    assert broken.value.code == 500 and broken.value.status == "INTERNAL"

    with pytest.raises(errors.ClientError) as invalid:
        bad_role = types.Content(role="assistant", parts=[types.Part(text="x")])
        client.models.generate_content(model=FLASH, contents=[bad_role])
    assert invalid.value.code == 400 and invalid.value.status == "INVALID_ARGUMENT"
    assert invalid.value.message == "Please use a valid role: user, model."

    no_key = httpx.post(
        f"{server.url}/v1beta/models/{FLASH}:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert no_key.status_code == 403
    assert no_key.json()["error"]["status"] == "PERMISSION_DENIED"


def test_gemini_broken_streams(client: genai.Client) -> None:
    received: list[str] = []
    with pytest.raises(errors.ServerError) as failed:
        for chunk in client.models.generate_content_stream(
            model=FLASH_2, contents="one two three four", config=ctl(stream_error_after="2")
        ):
            received.append(chunk.text or "")
    assert len(received) == 2 and failed.value.status == "INTERNAL"

    received.clear()
    # google-genai sends through httpx2 when it is installed (else httpx), aiohttp when async
    with pytest.raises((httpx.HTTPError, httpx2.HTTPError)):
        for chunk in client.models.generate_content_stream(
            model=FLASH_2, contents="one two three four", config=ctl(disconnect_after="1")
        ):
            received.append(chunk.text or "")
    assert len(received) == 1


# --------------------------------------------------------------------------------------------
# Vertex AI
# --------------------------------------------------------------------------------------------

VERTEX_PREFIX = "/v1beta1/projects/proj/locations/us-central1/publishers/google/models"


def test_vertex_generate_and_stream(server: DevServer) -> None:
    client = vertex(server)
    response = client.models.generate_content(model=FLASH, contents="Capital of France?")
    assert response.text == "The capital of France is Paris."
    assert response.create_time is not None
    usage = response.usage_metadata
    assert usage is not None and usage.traffic_type == types.TrafficType.ON_DEMAND
    request = last_request(server, "/v1beta1")
    assert request.path == f"{VERTEX_PREFIX}/{FLASH}:generateContent"
    assert request.headers["authorization"] == "Bearer tok"

    chunks = list(client.models.generate_content_stream(model=FLASH_2, contents="hi there"))
    assert len(chunks) > 2
    assert [c.usage_metadata is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert last_request(server, "/v1beta1").path == (
        f"{VERTEX_PREFIX}/{FLASH_2}:streamGenerateContent?alt=sse"
    )

    async def run() -> str | None:
        return (await client.aio.models.generate_content(model=FLASH_2, contents="hi")).text

    assert (
        asyncio.run(run()) == 'You asked: "hi". Here is a thoughtful answer from the local server.'
    )


def test_vertex_express_mode(server: DevServer) -> None:
    options = types.HttpOptions(base_url=server.url)
    client = genai.Client(vertexai=True, api_key="vk", http_options=options)
    assert client.models.generate_content(model=FLASH_2, contents="hi").text
    request = last_request(server, "/v1beta1")
    assert request.path == f"/v1beta1/publishers/google/models/{FLASH_2}:generateContent"
    assert request.headers["x-goog-api-key"] == "vk"


def test_vertex_embeddings(server: DevServer) -> None:
    client = vertex(server)
    one = client.models.embed_content(
        model="gemini-embedding-001", contents="hi", config={"output_dimensionality": 5}
    )
    assert one.embeddings and one.embeddings[0].values == embedding_vector("hi", 5)
    assert last_request(server, "/v1beta1").path == (
        f"{VERTEX_PREFIX}/gemini-embedding-001:embedContent"
    )
    two = client.models.embed_content(model="gemini-embedding-001", contents=list_of("a", "b"))
    assert [e.values for e in two.embeddings or []] == [embedding_vector(t, 8) for t in "ab"]
    assert last_request(server, "/v1beta1").path.endswith(":batchEmbedContents")
    legacy = client.models.embed_content(
        model="text-embedding-005", contents=list_of("a", "bc"), config={"output_dimensionality": 3}
    )
    assert [e.values for e in legacy.embeddings or []] == [
        embedding_vector(t, 3) for t in ("a", "bc")
    ]
    assert legacy.metadata and legacy.metadata.billable_character_count == 3
    assert last_request(server, "/v1beta1").path.endswith("/text-embedding-005:predict")


def test_vertex_errors(server: DevServer) -> None:
    client = vertex(server, {"x-devserver-status": "429"})
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=FLASH, contents="x")
    assert limited.value.status == "RESOURCE_EXHAUSTED"
    assert limited.value.message and limited.value.message.startswith("Resource exhausted.")
    unauthenticated = httpx.post(
        f"{server.url}{VERTEX_PREFIX}/{FLASH}:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["status"] == "UNAUTHENTICATED"


# --------------------------------------------------------------------------------------------
# Ollama
# --------------------------------------------------------------------------------------------


def test_ollama_chat(server: DevServer, olla: ollama.Client) -> None:
    response = olla.chat(
        model=LLAMA, messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    assert response.message.role == "assistant"
    assert response.message.content == "The capital of France is Paris."
    assert response.done is True and response.done_reason == "stop"
    assert response.prompt_eval_count and response.eval_count
    assert response.total_duration and response.eval_duration and response.load_duration
    assert response.model == LLAMA and response.created_at and response.created_at.endswith("Z")
    request = last_request(server, "/api/")
    assert request.path == "/api/chat" and request.json()["stream"] is False


def test_ollama_chat_stream(server: DevServer, olla: ollama.Client) -> None:
    parts = list(
        olla.chat(model=LLAMA, messages=[{"role": "user", "content": "hello"}], stream=True)
    )
    assert len(parts) > 3
    assert all(not p.done for p in parts[:-1]) and parts[-1].done is True
    assert "".join(p.message.content or "" for p in parts) == (
        'You asked: "hello". Here is a thoughtful answer from the local server.'
    )
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count
    assert parts[0].eval_count is None  # metrics only in the final line

    # on the wire: NDJSON, streamed by default when the body has no "stream"
    raw = httpx.post(
        f"{server.url}/api/chat",
        json={"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert raw.headers["content-type"] == "application/x-ndjson"
    lines = raw.text.splitlines()
    assert raw.text.endswith("\n") and len(lines) > 3
    final = json.loads(lines[-1])
    assert final["done"] is True and final["message"] == {"role": "assistant", "content": ""}
    assert list(final)[:5] == ["model", "created_at", "message", "done", "done_reason"]


def test_ollama_tool_call_round_trip(olla: ollama.Client) -> None:
    question = {"role": "user", "content": "What's the weather in Paris and London?"}
    first = olla.chat(model=LLAMA, messages=[question], tools=[OLLAMA_TOOL])
    calls = first.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "London"}),
    ]
    assert first.message.content == "" and first.done_reason == "stop"
    streamed = list(olla.chat(model=LLAMA, messages=[question], tools=[get_weather], stream=True))
    with_calls = [p for p in streamed if p.message.tool_calls]
    assert len(with_calls) == 1 and len(with_calls[0].message.tool_calls or []) == 2

    history: list[Any] = [question, first.message]
    history += [{"role": "tool", "content": "sunny", "tool_name": "get_weather"}] * 2
    second = olla.chat(model=LLAMA, messages=history, tools=[OLLAMA_TOOL])
    assert not second.message.tool_calls
    assert second.message.content == "Based on the tools: sunny; sunny"


def test_ollama_thinking_format_and_options(server: DevServer, olla: ollama.Client) -> None:
    parts = list(
        olla.chat(
            model="qwen3", messages=[{"role": "user", "content": "why?"}], think=True, stream=True
        )
    )
    thinking = "".join(p.message.thinking or "" for p in parts)
    assert "why?" in thinking
    first_content = next(i for i, p in enumerate(parts) if p.message.content)
    assert all(p.message.thinking for p in parts[:first_content])

    class City(BaseModel):
        city: str

    structured = olla.chat(
        model=LLAMA,
        messages=[{"role": "user", "content": "A city"}],
        format=City.model_json_schema(),
    )
    City.model_validate_json(structured.message.content or "")
    cut = olla.chat(
        model=LLAMA, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3}
    )
    assert cut.done_reason == "length" and cut.message.content == "You asked:"
    echo = ollama.Client(host=server.url, headers={"x-devserver-reply": "pong"})
    pong = echo.chat(model=LLAMA, messages=[{"role": "user", "content": "ping"}])
    assert pong.message.content == "pong"


def test_ollama_generate(server: DevServer, olla: ollama.Client) -> None:
    single = olla.generate(model=LLAMA, prompt="What is the capital of France?", system="Be brief")
    assert single.response == "The capital of France is Paris."
    assert single.done and single.context and single.prompt_eval_count
    assert last_request(server, "/api/").json()["system"] == "Be brief"
    parts = list(olla.generate(model=LLAMA, prompt="hi", stream=True))
    assert len(parts) > 3 and parts[-1].done and parts[-1].context
    assert "".join(p.response or "" for p in parts) == single.response.replace(
        "The capital of France is Paris.",
        'You asked: "hi". Here is a thoughtful answer from the local server.',
    )
    loaded = olla.generate(model=LLAMA)
    assert loaded.done_reason == "load" and loaded.response == ""
    # loading answers with one plain JSON object, even when asked to stream
    assert [p.done_reason for p in olla.generate(model=LLAMA, stream=True)] == ["load"]


def test_ollama_embed(server: DevServer, olla: ollama.Client) -> None:
    many = olla.embed(model="nomic-embed-text", input=["a", "b"])
    assert [list(v) for v in many.embeddings] == [embedding_vector(t, 8) for t in "ab"]
    assert many.prompt_eval_count == 2 and many.total_duration
    assert last_request(server, "/api/").path == "/api/embed"
    one = olla.embed(model="nomic-embed-text", input="hello", dimensions=4)
    assert [list(v) for v in one.embeddings] == [embedding_vector("hello", 4)]
    legacy = olla.embeddings(model="nomic-embed-text", prompt="a")
    assert list(legacy.embedding) == embedding_vector("a", 8)


def test_ollama_models(server: DevServer, olla: ollama.Client) -> None:
    names = [m.model for m in olla.list().models]
    assert "llama3.2:latest" in names
    shown = olla.show(LLAMA)
    assert shown.details and shown.details.family == "llama"
    assert shown.capabilities and "tools" in shown.capabilities
    assert olla.ps().models == []
    assert httpx.get(f"{server.url}/api/version").json()["version"]


def test_ollama_errors(server: DevServer) -> None:
    messages = [{"role": "user", "content": "hi"}]
    missing = ollama.Client(host=server.url, headers={"x-devserver-status": "404"})
    with pytest.raises(ollama.ResponseError) as not_found:
        missing.chat(model="nope", messages=messages)
    assert not_found.value.status_code == 404
    assert not_found.value.error == "model 'nope' not found"
    busy = ollama.Client(host=server.url, headers={"x-devserver-status": "503"})
    with pytest.raises(ollama.ResponseError) as unavailable:
        list(busy.chat(model=LLAMA, messages=messages, stream=True))
    assert unavailable.value.status_code == 503
    no_model = httpx.post(f"{server.url}/api/chat", json={"messages": messages})
    assert no_model.status_code == 400 and no_model.json() == {"error": "model is required"}

    broken = ollama.Client(host=server.url, headers={"x-devserver-stream-error-after": "3"})
    received: list[Any] = []
    with pytest.raises(ollama.ResponseError) as mid_stream:
        for part in broken.chat(model=LLAMA, messages=messages, stream=True):
            received.append(part)
    assert len(received) == 3 and "error" in mid_stream.value.error

    dropped = ollama.Client(host=server.url, headers={"x-devserver-disconnect-after": "2"})
    received.clear()
    with pytest.raises(httpx.HTTPError):
        for generated in dropped.generate(model=LLAMA, prompt="hi", stream=True):
            received.append(generated)
    assert len(received) == 2

    unknown = httpx.post(f"{server.url}/api/nothing", json={})
    assert unknown.status_code == 404 and unknown.text == "404 page not found"


def test_ollama_async(server: DevServer) -> None:
    async def run() -> tuple[str | None, str, str]:
        client = ollama.AsyncClient(host=server.url)
        slow = ollama.AsyncClient(host=server.url, headers={"x-devserver-chunk-delay-ms": "5"})
        single = await client.chat(model=LLAMA, messages=[{"role": "user", "content": "hi"}])
        pieces = [
            part.message.content or ""
            async for part in await client.chat(
                model=LLAMA, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        ]
        started = time.monotonic()
        generated = [
            part.response or ""
            async for part in await slow.generate(model=LLAMA, prompt="hi", stream=True)
        ]
        assert time.monotonic() - started >= 0.005 * (len(generated) - 1)
        return single.message.content, "".join(pieces), "".join(generated)

    single, streamed, generated = asyncio.run(run())
    expected = 'You asked: "hi". Here is a thoughtful answer from the local server.'
    assert single == streamed == generated == expected
