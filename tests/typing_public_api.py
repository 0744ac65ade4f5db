"""The public API as users write it must type-check under ``mypy --strict`` (``make typecheck``).

Not a pytest module (no ``test_`` prefix): mypy reads it and nothing calls it at import. Running
it (``python tests/typing_public_api.py``) builds every client once, without any request.
"""

from __future__ import annotations

import httpx
import httpx2
import openai

import tracer.httpx2
from tracer import (
    AsyncTracingTransport,
    TracedAsyncClient,
    TracedClient,
    TracerConfig,
    TracingTransport,
    wrap,
)

KEY = "sk-typing-check"


def httpx_clients() -> list[openai.OpenAI | openai.AsyncOpenAI]:
    """The ``httpx`` shells: real ``httpx`` clients and transports, as the docs use them."""
    config = TracerConfig(capture_content=False, max_body_bytes=1024)
    client: httpx.Client = TracedClient()
    aclient: httpx.AsyncClient = TracedAsyncClient(config=config, timeout=30)
    wrapped: httpx.Client = wrap(httpx.Client(timeout=30))
    awrapped: httpx.AsyncClient = wrap(httpx.AsyncClient(), config)
    transport: httpx.BaseTransport = TracingTransport(httpx.HTTPTransport())
    atransport: httpx.AsyncBaseTransport = AsyncTracingTransport(
        httpx.AsyncHTTPTransport(), config=config
    )
    default: httpx.BaseTransport = TracingTransport()
    config_back: TracerConfig = TracedClient(config=config).tracer_config
    assert config_back is config
    # openai>=3 annotates ``http_client`` as httpx2 only, yet accepts httpx clients (checked at
    # run time); ``unused-ignore`` keeps this valid on openai 1.x/2.x, annotated for httpx.
    return [
        openai.OpenAI(api_key=KEY, http_client=client),  # type: ignore[arg-type, unused-ignore]
        openai.AsyncOpenAI(api_key=KEY, http_client=aclient),  # type: ignore[arg-type, unused-ignore]
        openai.OpenAI(api_key=KEY, http_client=wrapped),  # type: ignore[arg-type, unused-ignore]
        openai.AsyncOpenAI(api_key=KEY, http_client=awrapped),  # type: ignore[arg-type, unused-ignore]
        openai.OpenAI(
            api_key=KEY,
            http_client=httpx.Client(transport=transport),  # type: ignore[arg-type, unused-ignore]
        ),
        openai.AsyncOpenAI(
            api_key=KEY,
            http_client=httpx.AsyncClient(transport=atransport),  # type: ignore[arg-type, unused-ignore]
        ),
        openai.OpenAI(
            api_key=KEY,
            http_client=httpx.Client(mounts={"https://": default}),  # type: ignore[arg-type, unused-ignore]
        ),
    ]


def httpx2_clients() -> list[openai.OpenAI | openai.AsyncOpenAI]:
    """The ``httpx2`` shells, which openai>=3 (and anthropic>=2) are annotated for."""
    config = TracerConfig(enabled=True, export="none")
    client: httpx2.Client = tracer.httpx2.TracedClient()
    aclient: httpx2.AsyncClient = tracer.httpx2.TracedAsyncClient(config=config)
    wrapped: httpx2.Client = wrap(httpx2.Client(timeout=30))
    awrapped: httpx2.AsyncClient = wrap(httpx2.AsyncClient(), config=config)
    transport: httpx2.BaseTransport = tracer.httpx2.TracingTransport(httpx2.HTTPTransport())
    atransport: httpx2.AsyncBaseTransport = tracer.httpx2.AsyncTracingTransport(
        httpx2.AsyncHTTPTransport(), config
    )
    return [
        openai.OpenAI(api_key=KEY, http_client=client),
        openai.AsyncOpenAI(api_key=KEY, http_client=aclient),
        openai.OpenAI(api_key=KEY, http_client=wrapped),
        openai.AsyncOpenAI(api_key=KEY, http_client=awrapped),
        openai.OpenAI(api_key=KEY, http_client=httpx2.Client(transport=transport)),
        openai.AsyncOpenAI(api_key=KEY, http_client=httpx2.AsyncClient(transport=atransport)),
    ]


if __name__ == "__main__":
    built = httpx_clients() + httpx2_clients()
    print(f"{len(built)} SDK clients built on traced HTTP clients")
