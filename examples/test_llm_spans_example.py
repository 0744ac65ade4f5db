"""Testing your own LLM code's tracing with the ``llm_spans`` fixture (installed with the
package as a pytest plugin) and pytest-httpx's ``httpx_mock``: no network, no MLflow store.

Run: ``.venv/bin/python -m pytest examples/test_llm_spans_example.py``
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI
from pytest_httpx import HTTPXMock

from tracer import TracedClient

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22},
}


def capital_of(country: str) -> str:
    """The code under test: one traced LLM call."""
    client = OpenAI(api_key="sk-test", http_client=TracedClient(), max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"What is the capital of {country}?"}],
        temperature=0.1,
    )
    return reply.choices[0].message.content or ""


def test_the_call_is_traced(llm_spans: Any, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url="https://api.openai.com/v1/chat/completions", json=COMPLETION)

    assert capital_of("France") == "The capital of France is Paris."

    span = llm_spans.one(api="chat.completions")
    assert span.status == "OK"
    assert span.model == "gpt-4o-mini-2024-07-18"  # the model the response names
    assert span.attributes["temperature"] == 0.1
    assert span.usage == {"input_tokens": 14, "output_tokens": 8, "total_tokens": 22}
    assert llm_spans.filter(contains="capital of France")


def test_an_api_error_is_an_error_span(llm_spans: Any, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="https://api.openai.com/v1/chat/completions",
        status_code=400,
        json={"error": {"message": "Invalid model", "type": "invalid_request_error"}},
    )
    with pytest.raises(openai.BadRequestError):
        capital_of("Spain")
    span = llm_spans.one(status="ERROR")
    assert span.error == "Invalid model"
