"""A realistic, deterministic, local LLM API server for tests and demos (127.0.0.1 only).

It speaks the wire APIs of OpenAI, Azure OpenAI, Databricks, Anthropic, Gemini, Ollama,
Cohere and Groq, streams included, and can be steered per request through ``x-devserver-*``
headers (errors, retries, compression, chunk timing, broken streams, ...); see
:mod:`llm_devserver.server` for the endpoints and the headers. It needs nothing beyond the
standard library::

    from openai import OpenAI
    from llm_devserver import DevServer

    with DevServer() as server:
        client = OpenAI(base_url=server.base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert server.requests[-1].path == "/v1/chat/completions"

The per-API modules (``chat``, ``anthropic``, ``gemini``, ...) build the payloads; they are not
a stable interface.
"""

from __future__ import annotations

from llm_devserver.server import DevServer, RecordedRequest, main

__all__ = ["DevServer", "RecordedRequest", "main"]
