"""Google Gemini through the real ``google-genai`` SDK, with the tracer as the client it is
given (``HttpOptions(httpx_client=..., httpx_async_client=...)``, httpx or httpx2): the same
span contract as every other API, on the Developer API and on Vertex AI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from llm_devserver import DevServer
from readback import only_span, read_spans, read_traces

import tracer.httpx2
from tracer import TracerConfig

FLASH = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
NO_AUTOMATIC_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


def options(server: DevServer, library: str, config: TracerConfig | None = None) -> Any:
    """HttpOptions handing the SDK the tracer's clients (httpx's, or httpx2's)."""
    clients = tracer.httpx2 if library == "httpx2" else tracer
    return types.HttpOptions(
        base_url=server.url,
        httpx_client=clients.TracedClient(config=config),
        httpx_async_client=clients.TracedAsyncClient(config=config),
    )


@pytest.fixture(params=["httpx", "httpx2"])
def client(request: pytest.FixtureRequest, server: DevServer) -> genai.Client:
    return genai.Client(api_key="AIza-SECRET-key-42", http_options=options(server, request.param))


def test_generate_content(client: genai.Client, experiment: str) -> None:
    response = client.models.generate_content(
        model=FLASH,
        contents="What is the capital of France?",
        config=types.GenerateContentConfig(temperature=0.3, max_output_tokens=256, seed=7),
    )
    span = only_span(experiment)
    assert span.name == f"chat {FLASH}"
    assert span.inputs["contents"][0]["parts"][0]["text"] == "What is the capital of France?"
    assert span.outputs["candidates"][0]["content"]["parts"][-1]["text"] == response.text
    usage = response.usage_metadata
    assert usage is not None
    assert span.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": usage.prompt_token_count,
        "output_tokens": usage.candidates_token_count,
        "total_tokens": usage.total_token_count,
    }
    attributes = span.attributes
    assert attributes["tracer.api"] == "gemini.generate_content"
    assert attributes["mlflow.llm.model"] == FLASH
    assert attributes["mlflow.llm.provider"] == "gemini"
    assert attributes["mlflow.message.format"] == "gemini"
    assert attributes["gen_ai.request.temperature"] == 0.3
    assert attributes["gen_ai.request.max_tokens"] == 256
    assert attributes["gen_ai.request.seed"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ["STOP"]
    assert attributes["gen_ai.response.id"] == response.response_id
    assert attributes["url.full"].endswith(f"/models/{FLASH}:generateContent")
    assert "AIza-SECRET" not in "".join(t.to_json() for t in read_traces(experiment))


def test_stream_equals_the_non_streaming_response(client: genai.Client, experiment: str) -> None:
    question = "Tell me about the local server."
    whole = client.models.generate_content(model=FLASH, contents=question)
    chunks = list(client.models.generate_content_stream(model=FLASH, contents=question))
    plain, streamed = read_spans(experiment, "CHAT_MODEL")
    assert len(chunks) > 2
    assert streamed.attributes["stream.completed"] is True
    assert streamed.attributes["stream.chunk_count"] == len(chunks)
    assert streamed.attributes["stream.time_to_first_chunk_ms"] > 0
    text = "".join(c.text or "" for c in chunks)
    parts = streamed.outputs["candidates"][0]["content"]["parts"]
    assert [p["text"] for p in parts if not p.get("thought")] == [text] == [whole.text]
    assert streamed.outputs["candidates"][0]["finishReason"] == "STOP"
    final = chunks[-1].usage_metadata
    assert final is not None
    assert streamed.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == final.total_token_count
    assert (
        streamed.attributes["mlflow.chat.tokenUsage"] == plain.attributes["mlflow.chat.tokenUsage"]
    )


def test_function_calls_are_recorded_with_complete_arguments(
    client: genai.Client, experiment: str
) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=NO_AUTOMATIC_CALLS,
    )
    question = "Weather in Paris and Tokyo?"
    response = client.models.generate_content(model=FLASH, contents=question, config=config)
    list(client.models.generate_content_stream(model=FLASH, contents=question, config=config))
    expected = [{"name": c.name, "args": c.args} for c in response.function_calls or []]
    assert expected == [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_weather", "args": {"city": "Tokyo"}},
    ]
    for span in read_spans(experiment, "CHAT_MODEL"):
        parts = span.outputs["candidates"][0]["content"]["parts"]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        assert [{"name": c["name"], "args": c["args"]} for c in calls] == expected
        assert span.attributes["mlflow.chat.tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather in a city",
                    "parameters": WEATHER.parameters_json_schema,
                },
            }
        ]


def test_async_generate_and_stream(server: DevServer, experiment: str) -> None:
    client = genai.Client(api_key="k", http_options=options(server, "httpx"))

    async def run() -> tuple[str | None, str]:
        whole = await client.aio.models.generate_content(model=FLASH, contents="hello")
        pieces = [
            chunk.text or ""
            async for chunk in await client.aio.models.generate_content_stream(
                model=FLASH, contents="hello"
            )
        ]
        return whole.text, "".join(pieces)

    whole, streamed = asyncio.run(run())
    spans = read_spans(experiment, "CHAT_MODEL")
    assert len(spans) == 2 and whole == streamed
    assert spans[1].attributes["stream.completed"] is True
    for span in spans:
        parts = span.outputs["candidates"][0]["content"]["parts"]
        assert [p["text"] for p in parts if not p.get("thought")] == [whole]


def test_embeddings_record_dimensions_not_vectors(client: genai.Client, experiment: str) -> None:
    result = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=16),
    )
    assert result.embeddings and len(result.embeddings) == 2
    span = only_span(experiment, "EMBEDDING")
    assert span.name == "embeddings gemini-embedding-001"
    assert span.attributes["embeddings.count"] == 2
    assert span.attributes["embeddings.dimensions"] == 16
    assert span.outputs["embeddings"] == [{"dimensions": 16}, {"dimensions": 16}]
    assert span.inputs["requests"][0]["content"]["parts"][0]["text"] == "first text"


def test_http_error_is_an_error_span(client: genai.Client, experiment: str) -> None:
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-devserver-status": "429"})
    )
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=FLASH, contents="hi", config=config)
    span = only_span(experiment)
    assert span.status.status_code == "ERROR"
    assert raised.value.message and raised.value.message in span.status.description
    assert span.attributes["http.response.status_code"] == 429
    assert span.outputs["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_vertex_ai(server: DevServer, experiment: str) -> None:
    client = genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=Credentials(token="ya29.SECRET-token"),  # type: ignore[no-untyped-call]
        http_options=options(server, "httpx"),
    )
    response = client.models.generate_content(model=FLASH, contents="hello")
    span = only_span(experiment)
    assert span.attributes["mlflow.llm.provider"] == "vertex_ai"
    assert span.attributes["mlflow.llm.model"] == FLASH
    assert (
        "/projects/my-project/locations/us-central1/publishers/google/models/"
        in (span.attributes["url.full"])
    )
    parts = span.outputs["candidates"][0]["content"]["parts"]
    assert [p["text"] for p in parts if not p.get("thought")] == [response.text]
    assert "SECRET" not in "".join(t.to_json() for t in read_traces(experiment))


def test_capture_off_keeps_no_content(server: DevServer, experiment: str) -> None:
    config = TracerConfig(capture_content=False)
    client = genai.Client(api_key="k", http_options=options(server, "httpx", config))
    client.models.generate_content(
        model=FLASH,
        contents="PROMPT-find-me",
        config=types.GenerateContentConfig(
            system_instruction="SYSTEM-find-me",
            temperature=0.2,
            tools=[types.Tool(function_declarations=[WEATHER])],
            automatic_function_calling=NO_AUTOMATIC_CALLS,
        ),
    )
    dump = "".join(t.to_json() for t in read_traces(experiment))
    assert "find-me" not in dump and "Current weather" not in dump
    span = only_span(experiment)
    assert span.inputs == {
        "generationConfig": {"temperature": 0.2},
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
    }
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
    assert json.dumps(span.outputs).count("text") == 0


def test_genai_evaluate_records_each_call_once(server: DevServer, experiment: str) -> None:
    # evaluate() switches on every autolog nobody configured, Gemini's too; a traced client
    # marks it off (spans.settle_autolog), so each row's trace holds the tracer's span only.
    import mlflow
    from mlflow.entities import Trace

    client = genai.Client(api_key="k", http_options=options(server, "httpx"))
    questions = ["What is MLflow?", "What is a span?"]

    def predict(question: str) -> str:
        return client.models.generate_content(model=FLASH, contents=question).text or ""

    result = mlflow.genai.evaluate(
        data=[{"inputs": {"question": q}} for q in questions], predict_fn=predict, scorers=[]
    )
    df = result.result_df
    assert df is not None
    for trace in (Trace.from_json(t) for t in df["trace"]):
        llm = [s for s in trace.data.spans if s.span_type in ("CHAT_MODEL", "LLM")]
        assert [s.name for s in llm] == [f"chat {FLASH}"]
