"""Nothing secret is ever stored: credentials, content when capture is off, inline media; and
a user's redaction function rewrites what is recorded. Every stored trace is scanned whole,
as exported JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llm_devserver import DevServer
from openai import OpenAI
from rawserver import RawServer, head
from readback import only_llm_span, read_traces, stored
from sdk import Chat

import tracer.httpx2
from tracer import TracedClient, TracerConfig
from tracer.redact import decoded_size, sniff_media_type


def test_credentials_never_reach_the_store(server: DevServer, experiment: str) -> None:
    secrets = {
        name: f"SECRET-{name}-{i}-zq"
        for i, name in enumerate(
            ["bearer", "api-key", "x-api-key", "cookie", "key", "api_key", "code", "user", "pw"]
        )
    }
    base = f"http://{secrets['user']}:{secrets['pw']}@127.0.0.1:{server.port}/v1"
    client = OpenAI(
        api_key=secrets["bearer"],
        base_url=base,
        http_client=TracedClient(),
        default_headers={"Cookie": f"session={secrets['cookie']}"},
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_headers={"api-key": secrets["api-key"], "x-api-key": secrets["x-api-key"]},
        extra_query={"key": secrets["key"], "api-key": secrets["api_key"], "code": secrets["code"]},
    )
    assert reply.choices[0].message.content == "The capital of France is Paris."
    received = server.requests[-1]
    assert secrets["key"] in received.path  # the secrets really were sent
    assert received.headers["x-api-key"] == secrets["x-api-key"]
    dump = stored(experiment)
    assert "chat gpt-4o-mini" in dump
    for name, secret in secrets.items():
        assert secret not in dump, name
    url = only_llm_span(experiment).attributes["url.full"]
    assert url == (
        f"http://127.0.0.1:{server.port}/v1/chat/completions"
        "?key=REDACTED&api-key=REDACTED&code=REDACTED"
    )


def test_anthropic_key_never_reaches_the_store(server: DevServer, experiment: str) -> None:
    secret = "sk-ant-SECRET-xyzzy"
    with anthropic.Anthropic(
        api_key=secret, base_url=server.url, http_client=tracer.httpx2.TracedClient()
    ) as client:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-api-key": secret},
        )
    dump = stored(experiment)
    assert "claude-sonnet-4-5" in dump
    assert secret not in dump


@pytest.mark.parametrize("stream", [False, True])
def test_capture_off_records_no_prompt_or_completion_text(
    server: DevServer, experiment: str, stream: bool
) -> None:
    prompt = "PROMPT-TEXT-find-me"
    reply = "REPLY-TEXT-find-me"
    tools_reply = Chat("sync", server.base_url, TracerConfig(capture_content=False)).create(
        messages=[
            {"role": "system", "content": "SYSTEM-TEXT"},
            {"role": "user", "content": prompt},
        ],
        temperature=0.3,
        stream=stream,
        stream_options={"include_usage": True} if stream else None,
        extra_headers={"x-devserver-reply": reply},
    )
    assert tools_reply  # the caller still gets everything
    dump = stored(experiment)
    for text in (prompt, reply, "SYSTEM-TEXT", "find-me"):
        assert text not in dump
    span = only_llm_span(experiment)
    assert span.attributes["temperature"] == 0.3
    assert span.attributes["mlflow.llm.model"] == "gpt-4o-mini"
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
    assert span.outputs["choices"] == [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}
    ]
    assert span.status.status_code == "OK"


def test_capture_off_for_every_api(server: DevServer, experiment: str) -> None:
    config = TracerConfig(capture_content=False)
    sdk = Chat("sync", server.base_url, config)
    sdk.call("completions.create", model="gpt-3.5-turbo-instruct", prompt="PROMPT-A-find-me")
    sdk.call("embeddings.create", model="text-embedding-3-small", input="PROMPT-B-find-me")
    sdk.call("responses.create", model="gpt-4o", input="PROMPT-C-find-me", instructions="INSTR")
    with anthropic.Anthropic(
        api_key="k", base_url=server.url, http_client=tracer.httpx2.TracedClient(config=config)
    ) as client:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            system="SYSTEM-D",
            messages=[{"role": "user", "content": "PROMPT-D-find-me"}],
        )
    dump = stored(experiment)
    assert dump.count('"mlflow.spanType"') >= 4
    for text in ("find-me", "INSTR", "SYSTEM-D", "Paris", "You asked"):
        assert text not in dump, text


def redact_emails(value: Any, field: str) -> Any:
    text = json.dumps(value).replace("alice@example.com", "<email>")
    return {**json.loads(text), "redacted_field": field}


def test_user_redaction_function(server: DevServer, experiment: str) -> None:
    Chat("sync", server.base_url, TracerConfig(redact=redact_emails)).create(
        messages=[{"role": "user", "content": "Mail alice@example.com please"}],
        extra_headers={"x-devserver-reply": "Sent to alice@example.com"},
    )
    span = only_llm_span(experiment)
    assert "alice@example.com" not in stored(experiment)
    assert span.inputs["messages"][0]["content"] == "Mail <email> please"
    assert span.inputs["redacted_field"] == "inputs"
    assert span.outputs["choices"][0]["message"]["content"] == "Sent to <email>"
    assert span.outputs["redacted_field"] == "outputs"


def test_failing_redaction_records_nothing_rather_than_too_much(
    server: DevServer, experiment: str
) -> None:
    def broken(value: Any, field: str) -> Any:
        raise RuntimeError("oops")

    response = Chat("sync", server.base_url, TracerConfig(redact=broken)).create()
    assert response.choices[0].message.content == "The capital of France is Paris."
    span = only_llm_span(experiment)
    assert span.inputs is None and span.outputs is None
    assert "What is the capital" not in stored(experiment)
    assert span.attributes["tracer.problems"] == [
        "the redact function raised RuntimeError on the inputs; inputs not recorded",
        "the redact function raised RuntimeError on the outputs; outputs not recorded",
    ]


IMAGE = base64.b64encode(b"\x89PNG\r\n" + bytes(range(256)) * 400).decode()


def test_inline_images_are_recorded_as_placeholders(server: DevServer, experiment: str) -> None:
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
    ]
    Chat("sync", server.base_url).create(messages=[{"role": "user", "content": content}])
    with anthropic.Anthropic(
        api_key="k", base_url=server.url, http_client=tracer.httpx2.TracedClient()
    ) as client:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": IMAGE},
                        },
                        {"type": "text", "text": "Describe it"},
                    ],
                }
            ],
        )
    dump = stored(experiment)
    assert IMAGE[:200] not in dump
    size = len(base64.b64decode(IMAGE))
    assert f"[image/png omitted: {size} bytes as base64]" in dump
    assert f"[image/jpeg omitted: {size} bytes as base64]" in dump
    assert "What is in this image?" in dump  # the text around it is kept


def test_inline_media_kept_when_configured(server: DevServer, experiment: str) -> None:
    url = f"data:image/png;base64,{IMAGE}"
    content = [{"type": "image_url", "image_url": {"url": url}}]
    Chat("sync", server.base_url, TracerConfig(capture_media=True)).create(
        messages=[{"role": "user", "content": content}]
    )
    recorded = only_llm_span(experiment).inputs["messages"][0]["content"][0]["image_url"]["url"]
    # As sent, or stored by MLflow as a trace attachment (MLFLOW_TRACE_EXTRACT_ATTACHMENTS).
    assert recorded == url or (
        recorded.startswith("mlflow-attachment://") and "image%2Fpng" in recorded
    ), recorded[:200]


WAV = base64.b64encode(b"RIFF\x24\x10\x00\x00WAVEfmt " + bytes(range(256)) * 4).decode()
PDF = base64.b64encode(b"%PDF-1.7\n" + bytes(range(256)) * 4).decode()


def test_audio_and_file_inputs_are_placeholders_whatever_their_size(
    server: DevServer, experiment: str
) -> None:
    short_audio = WAV[:200]  # below the size threshold: a media field is media all the same
    blob = base64.b64encode(bytes(range(256)) * 8).decode()  # base64 in a field of no known kind
    content = [
        {"type": "text", "text": "Transcribe and summarise"},
        {"type": "input_audio", "input_audio": {"data": short_audio, "format": "wav"}},
        {
            "type": "file",
            "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        },
    ]
    Chat("sync", server.base_url).create(
        messages=[{"role": "user", "content": content}], extra_body={"x_blob": blob}
    )
    span = only_llm_span(experiment)
    parts = span.inputs["messages"][0]["content"]
    assert parts[1]["input_audio"] == {
        "data": f"[audio/wav omitted: {len(base64.b64decode(short_audio))} bytes as base64]",
        "format": "wav",
    }
    assert parts[2]["file"] == {
        "filename": "report.pdf",
        "file_data": f"[application/pdf omitted: {len(base64.b64decode(PDF))} bytes as base64]",
    }
    assert span.inputs["x_blob"] == "[application/octet-stream omitted: 2048 bytes as base64]"
    assert span.attributes["x_blob"] == span.inputs["x_blob"]
    dump = stored(experiment)
    for payload in (short_audio, PDF[:100], blob[:100]):
        assert payload not in dump
    assert "Transcribe and summarise" in dump


def test_audio_in_a_chat_response_is_a_placeholder(experiment: str) -> None:
    body = json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-audio-preview",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "audio": {
                            "id": "audio_1",
                            "data": WAV,
                            "expires_at": 9,
                            "transcript": "Hello",
                        },
                    },
                }
            ],
        }
    ).encode()
    with RawServer() as raw:
        raw.respond(
            [
                head(
                    200,
                    headers=[
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                    ],
                ),
                body,
            ]
        )
        client = OpenAI(
            base_url=raw.url + "/v1", api_key="k", max_retries=0, http_client=TracedClient()
        )
        reply = client.chat.completions.create(
            model="gpt-4o-audio-preview",
            modalities=["text", "audio"],
            audio={"voice": "alloy", "format": "wav"},
            messages=[{"role": "user", "content": "Say hello"}],
        )
    assert reply.choices[0].message.audio is not None and reply.choices[0].message.audio.data == WAV
    audio = only_llm_span(experiment).outputs["choices"][0]["message"]["audio"]
    assert audio == {
        "id": "audio_1",
        "data": f"[audio/wav omitted: {len(base64.b64decode(WAV))} bytes as base64]",
        "expires_at": 9,
        "transcript": "Hello",
    }


def test_capture_off_does_not_quote_unparsable_stream_events(experiment: str) -> None:
    events = [
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "SECRET-reply"}}],
        },
    ]
    body = (
        b"".join(b"data: %s\n\n" % json.dumps(e).encode() for e in events)
        + b"data: {SECRET-junk-event not json\n\n"
        + b"data: [DONE]\n\n"
    )
    with RawServer() as raw:
        raw.respond([head(200, headers=[("Content-Type", "text/event-stream")]), body])
        with TracedClient(config=TracerConfig(capture_content=False)) as client:
            response = client.post(
                raw.url + "/v1/chat/completions",
                json={
                    "model": "m",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
    assert b"SECRET-junk-event" in response.content  # the caller got it all
    span = only_llm_span(experiment)
    assert span.attributes["tracer.problems"] == [
        "stream event is not JSON: (content not recorded)"
    ]
    assert "SECRET" not in stored(experiment)


@given(st.binary(max_size=600), st.booleans())
def test_placeholders_give_the_decoded_size(data: bytes, lines: bool) -> None:
    encoded = (base64.encodebytes(data) if lines else base64.b64encode(data)).decode()
    assert decoded_size(encoded) == len(data)


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"ID3\x04", "audio/mpeg"),
        (b"%PDF-1.7", "application/pdf"),
        (b"plain bytes", "application/octet-stream"),
    ],
)
def test_media_type_is_read_from_the_first_bytes(head: bytes, media_type: str) -> None:
    assert sniff_media_type(base64.b64encode(head + bytes(64)).decode()) == media_type


def test_capture_off_error_messages_lose_the_values_they_quote(
    server: DevServer, experiment: str
) -> None:
    client = OpenAI(
        api_key="k",
        base_url=server.base_url,
        max_retries=0,
        http_client=TracedClient(config=TracerConfig(capture_content=False)),
    )
    with pytest.raises(openai.BadRequestError, match="SECRET-format"):  # the caller's is whole
        client.embeddings.create(
            model="text-embedding-3-small",
            input="hello",
            encoding_format="SECRET-format",  # type: ignore[arg-type]
        )
    (span,) = read_traces(experiment)[0].data.spans
    assert span.status.status_code == "ERROR"
    message = span.status.description
    assert "SECRET" not in message and "is not one of" in message, message
    assert span.outputs["error"]["message"] == message
    assert "SECRET" not in stored(experiment)
