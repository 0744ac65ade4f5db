"""A stream the server does not label, or mislabels, is still read as the API's stream (issue
23): for every streaming API, through its real SDK, the span holds the same reassembled output,
usage and completion as with the right ``Content-Type``, and says the stream was unlabelled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import cohere
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import types
from llm_devserver import DevServer

import tracer.httpx2
from tracer import TracedClient, TracingTransport
from tracer.pytest_plugin import LLMSpans

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
LABELS = ["text/event-stream", "none", "application/json", "text/plain"]


def openai_chat(url: str, label: dict[str, str]) -> None:
    client = openai.OpenAI(
        base_url=url + "/v1", api_key="k", http_client=TracedClient(), default_headers=label
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        n=2,
    )
    list(stream)


def openai_completions(url: str, label: dict[str, str]) -> None:
    client = openai.OpenAI(
        base_url=url + "/v1", api_key="k", http_client=TracedClient(), default_headers=label
    )
    list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True))


def openai_responses(url: str, label: dict[str, str]) -> None:
    client = openai.OpenAI(
        base_url=url + "/v1", api_key="k", http_client=TracedClient(), default_headers=label
    )
    list(client.responses.create(model="gpt-4o", input="Hello", stream=True))


def openai_images_and_audio(url: str, label: dict[str, str]) -> None:
    client = openai.OpenAI(
        base_url=url + "/v1", api_key="k", http_client=TracedClient(), default_headers=label
    )
    list(client.images.generate(model="gpt-image-1", prompt="a cat", stream=True, partial_images=2))


def openai_transcription(url: str, label: dict[str, str]) -> None:
    client = openai.OpenAI(
        base_url=url + "/v1", api_key="k", http_client=TracedClient(), default_headers=label
    )
    audio = openai.OpenAI(base_url=url + "/v1", api_key="k").audio.speech.create(
        model="tts-1", voice="alloy", input="y" * 60, response_format="wav"
    )
    stream = client.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("talk.wav", audio.content), stream=True
    )
    list(stream)


def anthropic_messages(url: str, label: dict[str, str]) -> None:
    client = anthropic.Anthropic(
        base_url=url, api_key="k", http_client=tracer.httpx2.TracedClient(), default_headers=label
    )
    events = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=QUESTION, stream=True
    )
    list(events)


def gemini(url: str, label: dict[str, str]) -> None:
    client = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(base_url=url, httpx_client=TracedClient(), headers=label),
    )
    list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))


def cohere_chat(url: str, label: dict[str, str]) -> None:
    if not label:  # the SDK itself refuses a stream without its label: raw httpx for those
        client = cohere.ClientV2(api_key="k", base_url=url, httpx_client=TracedClient())
        list(client.chat_stream(model="command-a-03-2025", messages=QUESTION))
        return
    body = {"model": "command-a-03-2025", "messages": QUESTION, "stream": True}
    headers = {**label, "authorization": "Bearer k"}
    with (
        TracedClient() as http,
        http.stream("POST", url + "/v2/chat", json=body, headers=headers) as r,
    ):
        list(r.iter_bytes())


def ollama_chat(url: str, label: dict[str, str]) -> None:
    client = ollama.Client(
        host=url, transport=TracingTransport(httpx.HTTPTransport()), headers=label
    )
    try:
        list(client.chat(model="llama3.2", messages=QUESTION, stream=True))
    finally:
        client._client.close()


def span_facts(span: Any) -> dict[str, Any]:
    """What must not depend on the label."""
    attributes = span.attributes
    return {
        "outputs": stable(span.outputs),
        "usage": span.usage,
        "completed": attributes.get("stream.completed"),
        "chunks": attributes.get("stream.chunk_count"),
        "problems": attributes.get("tracer.problems"),
        "status": span.status,
    }


def stable(value: Any) -> Any:
    """Outputs without the ids and times the server makes anew for each call."""
    if isinstance(value, dict):
        return {
            k: stable(v)
            for k, v in value.items()
            if k
            not in (
                "id",
                "created",
                "created_at",
                "completed_at",
                "responseId",
                "generation_id",
                "msg_id",
            )
            and not k.endswith("_duration")
        }
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


@pytest.mark.parametrize(
    "call",
    [
        openai_chat,
        openai_completions,
        openai_responses,
        openai_images_and_audio,
        openai_transcription,
        anthropic_messages,
        gemini,
        cohere_chat,
        ollama_chat,
    ],
)
def test_an_unlabelled_stream_is_recorded_as_a_labelled_one(
    server: DevServer, llm_spans: LLMSpans, call: Callable[[str, dict[str, str]], None]
) -> None:
    facts = {}
    for label in LABELS:
        header = {} if label == "text/event-stream" else {"x-devserver-stream-content-type": label}
        call(server.url, header)
        span = llm_spans.spans[-1]
        facts[label] = span_facts(span)
        assert span.attributes.get("stream.unlabelled") is (True if header else None), label
    reference = facts["text/event-stream"]
    assert reference["completed"] is True and reference["chunks"] > 2
    assert reference["problems"] is None
    for label in LABELS[1:]:
        assert facts[label] == reference, label


def test_a_json_body_is_not_taken_for_a_stream(server: DevServer, llm_spans: LLMSpans) -> None:
    client = openai.OpenAI(
        base_url=server.base_url,
        api_key="k",
        http_client=TracedClient(),
        default_headers={"x-devserver-stream-content-type": "none"},
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)  # type: ignore[arg-type]
    span = llm_spans.one(api="chat.completions")
    assert "stream.unlabelled" not in span.attributes
    assert span.outputs["object"] == "chat.completion"


def test_an_ollama_reply_asked_without_a_stream_stays_one_object(
    server: DevServer, llm_spans: LLMSpans
) -> None:
    client = ollama.Client(
        host=server.url,
        transport=TracingTransport(httpx.HTTPTransport()),
        headers={"x-devserver-stream-content-type": "none"},
    )
    try:
        reply = client.chat(model="llama3.2", messages=QUESTION)  # stream=False
    finally:
        client._client.close()
    span = llm_spans.one(api="ollama.chat")
    assert "stream.unlabelled" not in span.attributes
    assert span.outputs["message"]["content"] == reply.message.content
