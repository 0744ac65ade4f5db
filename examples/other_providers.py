"""Google Gemini, Ollama and Cohere, traced the same way: each SDK is handed the tracer as its
HTTP client, and each call becomes one MLflow span.

Calls ``GEMINI_BASE_URL`` (else Google's service, with ``GEMINI_API_KEY``), ``OLLAMA_HOST``
(else Ollama's default, ``http://127.0.0.1:11434``) and ``CO_API_URL`` (else Cohere's service,
with ``CO_API_KEY``). ``make demo`` points all three at its local server, so it needs no key
and no model.

Run: ``GEMINI_BASE_URL=... OLLAMA_HOST=... CO_API_URL=... .venv/bin/python
examples/other_providers.py``
"""

from __future__ import annotations

import os

import cohere
import httpx
import ollama
from _client import use_experiment
from google import genai
from google.genai import types

from tracer import TracedAsyncClient, TracedClient, TracingTransport


def main() -> tuple[str, str, str]:
    """Ask Gemini, Ollama (streamed) and Cohere once each; return the three answers."""
    use_experiment()
    gemini = genai.Client(
        api_key=os.environ.get("GEMINI_API_KEY", "local"),
        http_options=types.HttpOptions(
            base_url=os.environ.get("GEMINI_BASE_URL"),
            httpx_client=TracedClient(),
            httpx_async_client=TracedAsyncClient(),
        ),
    )
    answer = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents="What is the capital of France?",
        config=types.GenerateContentConfig(temperature=0.2),
    )
    print(f"Gemini: {answer.text}")

    local = ollama.Client(
        host=os.environ.get("OLLAMA_HOST"), transport=TracingTransport(httpx.HTTPTransport())
    )
    pieces = []
    for part in local.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True,
    ):
        pieces.append(part.message.content or "")
    print(f"Ollama: {''.join(pieces)}")

    co = cohere.ClientV2(
        api_key=os.environ.get("CO_API_KEY", "local"),
        base_url=os.environ.get("CO_API_URL"),
        httpx_client=TracedClient(),
    )
    reply = co.chat(
        model="command-a-03-2025",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    content = reply.message.content or []
    text = "".join(getattr(item, "text", "") for item in content)
    print(f"Cohere: {text}")
    return answer.text or "", "".join(pieces), text


if __name__ == "__main__":
    main()
