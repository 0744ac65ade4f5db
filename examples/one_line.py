"""One line, and every LLM call of the process is traced, whatever client made it: here the
OpenAI SDK and Google's Gen AI SDK (async, over aiohttp) build their own clients, and nothing
is handed to them.

Calls the OpenAI-compatible server of ``OPENAI_BASE_URL`` (``make demo`` starts a local one;
Databricks with ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``) and ``GEMINI_BASE_URL`` (else
Google's service, with ``GEMINI_API_KEY``). The same with no code change at all:
``llm-tracer run -- python app.py``.

Run: ``OPENAI_BASE_URL=... GEMINI_BASE_URL=... .venv/bin/python examples/one_line.py``
"""

from __future__ import annotations

import asyncio
import os

from _client import DEFAULT_MODEL, use_experiment
from google import genai
from google.genai import types
from openai import OpenAI

import tracer

QUESTION = "What is the capital of France?"


def main() -> tuple[str, str]:
    """Ask through each SDK's own client; return the two answers."""
    use_experiment()
    tracer.instrument()
    try:
        host, token = os.environ.get("DATABRICKS_HOST"), os.environ.get("DATABRICKS_TOKEN")
        if host and token:
            openai = OpenAI(api_key=token, base_url=f"{host.rstrip('/')}/serving-endpoints")
        else:
            openai = OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "local"))
        reply = openai.chat.completions.create(
            model=os.environ.get("EXAMPLE_MODEL", DEFAULT_MODEL),
            messages=[{"role": "user", "content": QUESTION}],
        )
        gemini = genai.Client(
            api_key=os.environ.get("GEMINI_API_KEY", "local"),
            http_options=types.HttpOptions(base_url=os.environ.get("GEMINI_BASE_URL")),
        )
        answer = asyncio.run(
            gemini.aio.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
        )
    finally:
        tracer.uninstrument()  # only because `make demo` runs other examples after this one
    texts = reply.choices[0].message.content or "", answer.text or ""
    print(f"OpenAI SDK:  {texts[0]}\nGemini SDK:  {texts[1]}")
    return texts


if __name__ == "__main__":
    main()
