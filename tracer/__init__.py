"""A wire-level tracer for LLM APIs: an httpx transport that records every OpenAI-compatible
call as an MLflow span, without patching any SDK.

    from openai import OpenAI
    from tracer import TracedClient

    client = OpenAI(http_client=TracedClient())
"""

from tracer.client import TracedAsyncClient, TracedClient, wrap
from tracer.config import TracerConfig
from tracer.transport import AsyncTracingTransport, TracingTransport

__all__ = [
    "AsyncTracingTransport",
    "TracedAsyncClient",
    "TracedClient",
    "TracerConfig",
    "TracingTransport",
    "wrap",
]
__version__ = "0.1.0"
