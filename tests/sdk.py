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

    def create(self, **kwargs: Any) -> Any:
        """One chat completion; a stream is read to the end and returned as its chunks."""
        kwargs.setdefault("model", "gpt-4o-mini")
        kwargs.setdefault("messages", QUESTION)
        return self.call("chat.completions.create", **kwargs)

    def call(
        self,
        method: str,
        *,
        max_retries: int = 0,
        timeout: float = 30.0,
        client_class: tuple[type, type] = (OpenAI, AsyncOpenAI),
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` (a dotted path on the SDK client, e.g. ``embeddings.create``); a
        stream is read to the end and returned as its list of events."""
        options = {
            "api_key": API_KEY,
            "max_retries": max_retries,
            "timeout": timeout,
            **({"base_url": self.base_url} if self.base_url else {}),
            **(client_kwargs or {}),
        }

        def bound(client: Any) -> Any:
            for name in method.split("."):
                client = getattr(client, name)
            return client

        if self.mode == "sync":
            http_client = self.clients.TracedClient(config=self.config)
            with client_class[0](http_client=http_client, **options) as client:
                result = bound(client)(**kwargs)
                return list(result) if kwargs.get("stream") else result

        async def run() -> Any:
            http_client = self.clients.TracedAsyncClient(config=self.config)
            async with client_class[1](http_client=http_client, **options) as client:
                result = await bound(client)(**kwargs)
                if kwargs.get("stream"):
                    return [event async for event in result]
                return result

        return asyncio.run(run())


def joined_content(chunks: list[Any], index: int = 0) -> str:
    """The text the caller saw for choice ``index`` of a stream."""
    return "".join(
        c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index
    )
