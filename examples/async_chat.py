"""Async calls, traced at the wire.

Shows: ``AsyncOpenAI(..., http_client=TracedAsyncClient())``; two requests run concurrently
(one streamed, one not) inside one ``@mlflow.trace`` function, and both LLM spans land under
that function's span in the same trace.

Run: ``make demo``, or ``.venv/bin/python examples/async_chat.py`` with ``DATABRICKS_HOST``/
``DATABRICKS_TOKEN`` (or ``OPENAI_BASE_URL``) set.
"""

from __future__ import annotations

import asyncio

import mlflow
from _client import make_client, use_experiment
from openai import AsyncOpenAI


async def ask(client: AsyncOpenAI, model: str, question: str) -> str:
    """One plain (non-streamed) question."""
    response = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}]
    )
    return response.choices[0].message.content or ""


async def ask_streamed(client: AsyncOpenAI, model: str, question: str) -> str:
    """One streamed question; the deltas are joined into the answer."""
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], stream=True
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    return "".join(parts)


@mlflow.trace
async def ask_both() -> list[str]:
    """Ask two questions concurrently, one streamed and one not."""
    client, model = make_client(async_=True)
    async with client:
        answers = await asyncio.gather(
            ask_streamed(client, model, "What is the capital of France?"),
            ask(client, model, "What is the tallest mountain in Europe?"),
        )
    return list(answers)


def main() -> list[str]:
    """Run both questions; print and return the two answers."""
    use_experiment()
    answers = asyncio.run(ask_both())
    for answer in answers:
        print(answer)
    return answers


if __name__ == "__main__":
    main()
