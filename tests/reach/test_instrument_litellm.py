"""``tracer.instrument()`` with LiteLLM on the HTTP clients it builds for itself (no ``client=``
passed): ``completion`` and ``acompletion`` through its ``openai/`` provider, its
``anthropic/`` provider, and a streamed completion, against the local server. Each call is
exactly one LLM span holding the body LiteLLM sent and the answer it got. LiteLLM's async
path may send through its aiohttp-backed httpx transport, which both the httpx gate and the
aiohttp middleware see: the call is still recorded once.

LiteLLM is not in the ``dev`` extra (it installs about 260 MB): ``make test`` skips these tests,
``make compat`` runs them in the ``litellm`` environment (every test name holds ``litellm``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

# LiteLLM fetches its model price list from the internet when imported (MLflow imports it to
# price spans); the copy it ships keeps the suite offline and deterministic.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from llm_devserver import DevServer
from mlflow.entities import Span
from readback import Calls, llm_spans
from sdk import API_KEY

# LiteLLM's types, built on first use, carry a TypedDict qualifier pydantic warns it won't enforce.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .*`ReadOnly` qualifier:UserWarning")

MODEL = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-5"
QUESTION = "What is the capital of France?"
ASK = [{"role": "user", "content": QUESTION}]
ANSWER = "The capital of France is Paris."  # the server's
ANTHROPIC_KEY = "sk-ant-SECRET-31337"
CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


@pytest.fixture
def litellm() -> Any:
    """LiteLLM with no MLflow logger left over from an earlier test: these tests run without
    its autolog. (``mlflow.litellm.autolog(disable=True)`` removes the logger from
    ``success_callback`` and ``failure_callback``, but not from the async lists LiteLLM copied it
    into at its first call, so a later async call would still log a ``litellm-acompletion``
    span, as after ``tests/reach/test_frameworks.py::test_litellm_autolog`` in the same session.)"""
    litellm = pytest.importorskip("litellm")
    from litellm.integrations.mlflow import MlflowLogger

    for name in CALLBACK_LISTS:
        kept = [
            c for c in getattr(litellm, name) if not (c == "mlflow" or isinstance(c, MlflowLogger))
        ]
        setattr(litellm, name, kept)
    return litellm


def one_llm_span(experiment: str, calls: Calls, *secrets: str) -> Span:
    """The single LLM span of the test, recorded by the tracer, for the single LLM request the
    server received; its inputs are the body LiteLLM sent, and no key is in it."""
    spans = llm_spans(experiment)
    assert len(spans) == 1, [(s.name, s.span_type) for s in spans]
    (span,) = spans
    (body,) = calls.bodies()
    assert span.attributes.get("tracer.api") is not None  # the tracer's, not a framework's
    assert span.span_type == "CHAT_MODEL"
    assert span.status.status_code == "OK"
    assert span.inputs == body
    recorded = json.dumps(span.to_dict())
    for secret in (API_KEY, *secrets):
        assert secret not in recorded
    return span


def usage(span: Span) -> dict[str, int]:
    recorded = span.attributes["mlflow.chat.tokenUsage"]
    return {key: recorded[key] for key in ("input_tokens", "output_tokens", "total_tokens")}


def litellm_usage(usage: Any) -> dict[str, int]:
    return {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def chat_text(span: Span) -> str:
    """The assistant text of a chat completion span."""
    return str(span.outputs["choices"][0]["message"]["content"])


def assert_openai_reply(span: Span, response: Any) -> None:
    assert span.name == f"chat {MODEL}"
    assert span.attributes["tracer.api"] == "chat.completions"
    assert span.outputs["id"] == response.id
    assert chat_text(span) == response.choices[0].message.content == ANSWER
    assert usage(span) == litellm_usage(response.usage)


def assert_streamed_reply(span: Span, chunks: list[Any]) -> None:
    """The span of a stream LiteLLM read to its end holds the text and usage it handed on."""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert span.attributes["stream.completed"] is True
    assert chat_text(span) == text == ANSWER
    (final,) = [c for c in chunks if getattr(c, "usage", None)]
    assert usage(span) == litellm_usage(final.usage)


# --------------------------------------------------------------------------------------------
# openai/ provider: sync, async (LiteLLM's aiohttp transport under httpx), streamed
# --------------------------------------------------------------------------------------------


def test_instrument_litellm_completion(
    litellm: Any, server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    response = litellm.completion(
        model=f"openai/{MODEL}",
        api_base=server.base_url,
        api_key=API_KEY,
        messages=ASK,
        max_tokens=50,
    )
    span = one_llm_span(experiment, calls)
    assert span.inputs["messages"] == ASK
    assert span.inputs["max_tokens"] == 50
    assert_openai_reply(span, response)


def test_instrument_litellm_acompletion(
    litellm: Any, server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *ASK]

    async def run() -> Any:
        return await litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=server.base_url,
            api_key=API_KEY,
            messages=messages,
        )

    response = asyncio.run(run())
    span = one_llm_span(experiment, calls)
    assert span.inputs["messages"] == messages
    assert_openai_reply(span, response)


def test_instrument_litellm_stream(
    litellm: Any, server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    chunks = list(
        litellm.completion(
            model=f"openai/{MODEL}",
            api_base=server.base_url,
            api_key=API_KEY,
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    span = one_llm_span(experiment, calls)
    assert span.inputs["stream"] is True
    assert_streamed_reply(span, chunks)


def test_instrument_litellm_astream(
    litellm: Any, server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    async def run() -> list[Any]:
        stream = await litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=server.base_url,
            api_key=API_KEY,
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
        )
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert_streamed_reply(one_llm_span(experiment, calls), chunks)


# --------------------------------------------------------------------------------------------
# anthropic/ provider: LiteLLM's own httpx client, the Messages API
# --------------------------------------------------------------------------------------------


def test_instrument_litellm_anthropic(
    litellm: Any, server: DevServer, experiment: str, calls: Calls, instrumented: None
) -> None:
    response = litellm.completion(
        model=f"anthropic/{CLAUDE}",
        api_base=server.url,
        api_key=ANTHROPIC_KEY,
        messages=ASK,
        max_tokens=256,
    )
    span = one_llm_span(experiment, calls, ANTHROPIC_KEY)
    assert span.name == f"chat {CLAUDE}"
    assert span.attributes["tracer.api"] == "anthropic.messages"
    # LiteLLM sends the question as a text block
    (asked,) = span.inputs["messages"]
    assert asked["role"] == "user"
    assert [b["text"] for b in asked["content"] if b["type"] == "text"] == [QUESTION]
    text = "".join(b["text"] for b in span.outputs["content"] if b["type"] == "text")
    assert text == response.choices[0].message.content == ANSWER
    # LiteLLM gives its reply an id of its own (chatcmpl-...), not the message's
    assert span.outputs["id"].startswith("msg_")
    assert usage(span) == litellm_usage(response.usage)
