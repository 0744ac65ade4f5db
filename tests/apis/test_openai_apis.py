"""Legacy completions, embeddings, the Responses API, Azure OpenAI and Databricks serving
endpoints through the real openai SDK (sync and async) against the local server; streamed
spans compared field by field with the non-streaming response of the same request."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from llm_devserver import DevServer
from readback import only_llm_span, only_span, read_spans
from sdk import API_KEY, WEATHER_TOOL, Chat

import tracer.httpx2
from tracer import TracedClient, TracerConfig

RANDOM_KEYS = {
    "id",
    "created",
    "created_at",
    "completed_at",
    "call_id",
    "system_fingerprint",
    "sequence_number",
}


def stable(value: Any) -> Any:
    """``value`` without the fields a server draws at random (ids, timestamps)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in RANDOM_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest, server: DevServer) -> Chat:
    return Chat(request.param, server.base_url)


# --- legacy completions -----------------------------------------------------------------------

COMPLETION = {
    "model": "gpt-3.5-turbo-instruct",
    "prompt": ["Say hi", "Say bye"],
    "n": 2,
    "max_tokens": 20,
}


def test_completions(sdk: Chat, experiment: str) -> None:
    response = sdk.call("completions.create", **COMPLETION)
    span = only_span(experiment, "LLM")
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    assert span.inputs == COMPLETION
    assert span.outputs == response.to_dict()
    assert len(span.outputs["choices"]) == 4
    attrs = span.attributes
    assert "prompt" not in attrs
    assert attrs["n"] == 2
    assert attrs["tracer.api"] == "completions"
    assert attrs["mlflow.message.format"] == "openai"
    assert attrs["mlflow.chat.tokenUsage"]["output_tokens"] == response.usage.completion_tokens


def test_completions_stream_equals_the_non_streaming_response(sdk: Chat, experiment: str) -> None:
    expected = sdk.call("completions.create", **COMPLETION).to_dict()
    chunks = sdk.call(
        "completions.create", **COMPLETION, stream=True, stream_options={"include_usage": True}
    )
    first, streamed = read_spans(experiment, "LLM")
    assert streamed.attributes["stream.completed"] is True
    assert streamed.attributes["stream.chunk_count"] == len(chunks)
    assert stable(streamed.outputs) == stable(expected)
    assert streamed.outputs["id"] == chunks[0].id
    assert (
        streamed.attributes["mlflow.chat.tokenUsage"] == first.attributes["mlflow.chat.tokenUsage"]
    )
    texts = [c["text"] for c in streamed.outputs["choices"]]
    for choice in streamed.outputs["choices"]:
        seen = "".join(
            c.text for chunk in chunks for c in chunk.choices if c.index == choice["index"]
        )
        assert seen == choice["text"]
    assert len(set(texts)) > 1


# --- embeddings -------------------------------------------------------------------------------


def test_embeddings_record_a_summary_not_the_vectors(sdk: Chat, experiment: str) -> None:
    inputs = ["first text", "second text", "third"]
    response = sdk.call("embeddings.create", model="text-embedding-3-small", input=inputs)
    span = only_span(experiment, "EMBEDDING")
    assert span.name == "embeddings text-embedding-3-small"
    assert span.inputs["input"] == inputs
    assert span.inputs["encoding_format"] == "base64"  # what the SDK asks for by default
    dimensions = len(response.data[0].embedding)
    assert span.attributes["embeddings.count"] == 3
    assert span.attributes["embeddings.dimensions"] == dimensions
    assert span.outputs["data"] == [
        {"object": "embedding", "index": i, "dimensions": dimensions} for i in range(3)
    ]
    assert span.outputs["model"] == response.model
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == response.usage.prompt_tokens
    assert "mlflow.message.format" not in span.attributes


def test_embeddings_vectors_when_configured(server: DevServer, experiment: str) -> None:
    sdk = Chat("sync", server.base_url, TracerConfig(capture_embeddings=True))
    response = sdk.call(
        "embeddings.create", model="text-embedding-3-small", input="hello", dimensions=12
    )
    span = only_span(experiment, "EMBEDDING")
    assert [d["embedding"] for d in span.outputs["data"]] == [response.data[0].embedding]
    assert span.attributes["embeddings.dimensions"] == 12


def test_embeddings_float_format(server: DevServer, experiment: str) -> None:
    response = Chat("sync", server.base_url).call(
        "embeddings.create",
        model="text-embedding-3-large",
        input=["a", "b"],
        encoding_format="float",
    )
    span = only_span(experiment, "EMBEDDING")
    assert span.attributes["embeddings.dimensions"] == len(response.data[1].embedding)
    assert span.attributes["embeddings.count"] == 2


# --- Responses API ----------------------------------------------------------------------------


def test_responses_non_streaming(sdk: Chat, experiment: str) -> None:
    response = sdk.call(
        "responses.create",
        model="gpt-4o",
        input="What is the capital of France?",
        instructions="Be brief.",
    )
    span = only_llm_span(experiment)
    assert span.name == "chat gpt-4o"
    assert span.outputs == response.to_dict()
    assert "Paris" in response.output_text
    attrs = span.attributes
    assert attrs["tracer.api"] == "responses"
    assert "input" not in attrs and "instructions" not in attrs
    assert attrs["mlflow.message.format"] == "openai"
    usage = response.usage
    assert attrs["mlflow.chat.tokenUsage"] == {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cache_read_input_tokens": usage.input_tokens_details.cached_tokens,
    }


def test_responses_stream_equals_the_non_streaming_response(sdk: Chat, experiment: str) -> None:
    request = {"model": "gpt-4o", "input": "Weather in Paris?", "tools": [FUNCTION_TOOL]}
    expected = sdk.call("responses.create", **request).to_dict()
    events = sdk.call("responses.create", **request, stream=True)
    _, streamed = read_spans(experiment, "CHAT_MODEL")
    assert events[-1].type == "response.completed"
    assert streamed.outputs == events[-1].response.to_dict()
    assert stable(streamed.outputs) == stable(expected)
    call = streamed.outputs["output"][0]
    assert call["type"] == "function_call"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert streamed.attributes["stream.completed"] is True
    assert streamed.attributes["mlflow.chat.tools"] == [
        {
            "type": "function",
            "function": {k: FUNCTION_TOOL[k] for k in ("name", "description", "parameters")},
        }
    ]


FUNCTION_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
}


def test_responses_stream_rebuilt_without_a_terminal_event(sdk: Chat, experiment: str) -> None:
    events = sdk.call(
        "responses.create",
        model="gpt-4o",
        input="What is the capital of France?",
        stream=True,
        extra_headers={"x-devserver-responses-end": "none"},
    )
    span = only_llm_span(experiment)
    assert span.attributes["stream.completed"] is False
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    message = span.outputs["output"][0]
    assert message["type"] == "message"
    assert message["content"][0]["text"] == text
    assert span.status.status_code == "OK"


def test_responses_failed_and_incomplete(sdk: Chat, experiment: str) -> None:
    for ending in ("failed", "incomplete"):
        sdk.call(
            "responses.create",
            model="gpt-4o",
            input="hello",
            stream=True,
            extra_headers={"x-devserver-responses-end": ending},
        )
    failed, incomplete = read_spans(experiment, "CHAT_MODEL")
    assert failed.status.status_code == "ERROR"
    assert failed.outputs["status"] == "failed"
    assert failed.status.description == failed.outputs["error"]["message"]
    assert incomplete.status.status_code == "OK"
    assert incomplete.outputs["status"] == "incomplete"
    assert incomplete.attributes["responses.incomplete_reason"] == "max_output_tokens"
    assert incomplete.attributes["stream.completed"] is True


def test_responses_error_event(sdk: Chat, experiment: str) -> None:
    with pytest.raises(openai.APIError):
        sdk.call(
            "responses.create",
            model="gpt-4o",
            input="hello",
            stream=True,
            extra_headers={"x-devserver-stream-error-after": "3"},
        )
    span = only_llm_span(experiment)
    assert span.status.status_code == "ERROR"
    assert span.attributes["stream.completed"] is False


# --- Azure OpenAI -----------------------------------------------------------------------------

AZURE_SECRET = "azure-key-SECRET-777"


@pytest.mark.parametrize("stream", [False, True])
def test_azure_deployment(
    server: DevServer, experiment: str, stream: bool, request: pytest.FixtureRequest
) -> None:
    sdk = Chat("sync", "")
    result = sdk.call(
        "chat.completions.create",
        client_class=(openai.AzureOpenAI, openai.AsyncAzureOpenAI),
        client_kwargs={
            "azure_endpoint": server.url,
            "api_key": AZURE_SECRET,
            "api_version": "2024-10-21",
            "azure_deployment": "my-gpt4o-deploy",
        },
        model="my-gpt4o-deploy",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=stream,
    )
    span = only_llm_span(experiment)
    model = result[-1].model if stream else result.model
    assert model != "my-gpt4o-deploy"
    assert span.attributes["mlflow.llm.model"] == model
    assert span.attributes["azure.openai.deployment"] == "my-gpt4o-deploy"
    assert "api-version=2024-10-21" in span.attributes["url.full"]
    assert AZURE_SECRET not in json.dumps(span.to_dict())
    assert span.outputs["choices"][0]["message"]["content"] == "The capital of France is Paris."
    if stream:
        assert span.attributes["stream.completed"] is True


def test_azure_v1_path(server: DevServer, experiment: str) -> None:
    response = Chat("sync", f"{server.url}/openai/v1").create()
    span = only_llm_span(experiment)
    assert span.outputs == response.to_dict()
    assert "azure.openai.deployment" not in span.attributes


# --- Databricks serving endpoints -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "span_type", "operation"),
    [
        (
            {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
            "CHAT_MODEL",
            "chat",
        ),
        ({"prompt": "Once upon a time"}, "LLM", "text_completion"),
        ({"input": ["a", "b"]}, "EMBEDDING", "embeddings"),
    ],
)
def test_databricks_invocations(
    server: DevServer, experiment: str, body: dict[str, Any], span_type: str, operation: str
) -> None:
    with TracedClient() as client:
        response = client.post(
            f"{server.url}/serving-endpoints/my-endpoint/invocations",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 200
    span = only_span(experiment, span_type)
    assert span.name == f"{operation} my-endpoint"
    assert span.attributes["databricks.serving_endpoint"] == "my-endpoint"
    assert span.attributes["mlflow.llm.model"] == response.json()["model"]
    assert API_KEY not in json.dumps(span.to_dict())


# --- raw httpx, as a vLLM or Ollama user would call it ----------------------------------------


def test_raw_httpx_stream_is_traced_like_the_sdk_call(server: DevServer, experiment: str) -> None:
    body = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": True,
    }
    with (
        TracedClient() as client,
        client.stream("POST", f"{server.base_url}/chat/completions", json=body) as response,
    ):
        raw = b"".join(response.iter_raw())
    events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    span = only_llm_span(experiment)
    assert span.name == "chat meta-llama/Llama-3.1-8B-Instruct"
    assert span.inputs == body
    assert span.outputs["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert span.attributes["stream.chunk_count"] == len(events) - 1
    assert span.attributes["stream.completed"] is True


# --- provider, cost, OpenTelemetry GenAI attributes, context propagation ------------------------


def test_genai_semantic_convention_attributes(sdk: Chat, experiment: str) -> None:
    response = sdk.create(temperature=0.2, max_tokens=50, n=1, stop="END", seed=7)
    attrs = only_llm_span(experiment).attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.stop_sequences"] == ["END"]
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.response.model"] == response.model
    assert attrs["gen_ai.response.id"] == response.id
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert attrs["gen_ai.provider.name"] == attrs["mlflow.llm.provider"] == "127.0.0.1"


def test_provider_names(server: DevServer, experiment: str) -> None:
    Chat("sync", f"{server.url}/serving-endpoints").create(model="databricks-llama-4-maverick")
    Chat("sync", f"{server.url}/openai/v1").create()
    with anthropic.Anthropic(
        api_key="k", base_url=server.url, http_client=tracer.httpx2.TracedClient()
    ) as client:
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
        )
    providers = [s.attributes["mlflow.llm.provider"] for s in read_spans(experiment, "CHAT_MODEL")]
    assert providers == ["databricks", "azure", "anthropic"]


def test_priced_model_gets_a_cost_in_the_store(httpx_mock: Any, experiment: str) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }
    httpx_mock.add_response(url="https://api.openai.com/v1/chat/completions", json=body)
    client = openai.OpenAI(api_key="sk-x", http_client=TracedClient(), max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "?"}])
    span = only_llm_span(experiment)
    assert span.attributes["mlflow.llm.provider"] == "openai"
    cost = span.attributes["mlflow.llm.cost"]
    assert cost["input_cost"] > 0 and cost["output_cost"] > 0
    assert cost["total_cost"] == pytest.approx(cost["input_cost"] + cost["output_cost"])


def test_trace_context_propagation(server: DevServer, experiment: str) -> None:
    Chat("sync", server.base_url).create()
    assert "traceparent" not in server.requests[-1].headers  # off by default
    Chat("sync", server.base_url, TracerConfig(propagate_context=True)).create()
    header = server.requests[-1].headers["traceparent"]
    _, second = read_spans(experiment, "CHAT_MODEL")
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert second.trace_id == f"tr-{trace_id}"
    assert second.span_id == span_id
