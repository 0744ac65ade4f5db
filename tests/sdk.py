"""One way to call the real openai SDK, sync or async, so tests share their bodies."""

from __future__ import annotations

import asyncio
from typing import Any

from openai import AsyncOpenAI, OpenAI

import tracer
import tracer.httpx2
from tracer import TracerConfig

API_KEY = "sk-test-SECRET-4242"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Chat:
    """Runs ``chat.completions.create`` through a traced sync or async SDK client.

    ``mode`` is ``sync`` or ``async``, optionally suffixed ``-httpx2`` to use the tracer's
    ``httpx2`` clients instead of the ``httpx`` ones.
    """

    def __init__(self, mode: str, base_url: str, config: TracerConfig | None = None) -> None:
        self.mode, _, library = mode.partition("-")
        self.clients = tracer.httpx2 if library == "httpx2" else tracer
        self.base_url = base_url
        self.config = config

    def create(self, *, max_retries: int = 0, timeout: float = 30.0, **kwargs: Any) -> Any:
        """One call; a stream is read to the end and returned as its list of chunks."""
        kwargs.setdefault("model", "gpt-4o-mini")
        kwargs.setdefault("messages", QUESTION)
        if self.mode == "sync":
            with OpenAI(
                api_key=API_KEY,
                base_url=self.base_url,
                http_client=self.clients.TracedClient(config=self.config),
                max_retries=max_retries,
                timeout=timeout,
            ) as client:
                result = client.chat.completions.create(**kwargs)
                return list(result) if kwargs.get("stream") else result

        async def run() -> Any:
            async with AsyncOpenAI(
                api_key=API_KEY,
                base_url=self.base_url,
                http_client=self.clients.TracedAsyncClient(config=self.config),
                max_retries=max_retries,
                timeout=timeout,
            ) as client:
                result = await client.chat.completions.create(**kwargs)
                if kwargs.get("stream"):
                    return [chunk async for chunk in result]
                return result

        return asyncio.run(run())


def joined_content(chunks: list[Any], index: int = 0) -> str:
    """The text the caller saw for choice ``index`` of a stream."""
    return "".join(
        c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index
    )
