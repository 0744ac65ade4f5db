"""Nothing secret is ever stored: credentials, content when capture is off, inline media; and
a user's redaction function rewrites what is recorded. Every stored trace is scanned whole,
as exported JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import pytest
from conftest import only_llm_span, read_traces
from openai import OpenAI
from sdk import Chat

import tracer.httpx2
from tracer import TracedClient, TracerConfig
from tracer.devserver import DevServer


def stored(experiment: str) -> str:
    """Every trace of the experiment, as MLflow exports it."""
    return "\n".join(trace.to_json() for trace in read_traces(experiment))


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
    assert span.outputs["choices"] == [{"index": 0, "finish_reason": "stop"}]
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
    size = len(IMAGE) * 3 // 4
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
