"""The tracer for ``httpx2`` clients (what ``openai>=3`` and ``anthropic>=2`` build on).

``httpx2`` has the transport interface of ``httpx`` with its own classes, and its clients only
accept its own responses and byte streams; these classes are the ``httpx`` ones rebuilt on
them, sharing all the logic::

    from anthropic import Anthropic
    from tracer.httpx2 import TracedClient

    client = Anthropic(http_client=TracedClient())

Importing this module requires ``httpx2``; the rest of the tracer imports ``httpx2`` only when it
is handed an ``httpx2`` client (see :mod:`tracer._httpx2_transport`).
"""

from __future__ import annotations

from typing import Any

import httpx2

from tracer._httpx2_transport import AsyncTracingTransport, TracingTransport
from tracer.client import OPENAI_DEFAULT_VALUES, wrap
from tracer.config import TracerConfig

__all__ = ["AsyncTracingTransport", "TracedAsyncClient", "TracedClient", "TracingTransport"]


def _defaults() -> dict[str, Any]:
    timeout, limits, follow = OPENAI_DEFAULT_VALUES
    return {
        "timeout": httpx2.Timeout(**timeout),
        "limits": httpx2.Limits(**limits),
        "follow_redirects": follow,
    }


class TracedClient(httpx2.Client):
    """An ``httpx2.Client`` whose LLM calls are recorded as MLflow spans.

    Takes every keyword ``httpx2.Client`` takes, plus ``config``; defaults to the timeout,
    connection limits and redirect behaviour of the OpenAI SDK's own client.
    """

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**{**_defaults(), **kwargs})
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)


class TracedAsyncClient(httpx2.AsyncClient):
    """An ``httpx2.AsyncClient`` whose LLM calls are recorded as MLflow spans."""

    def __init__(self, *, config: TracerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**{**_defaults(), **kwargs})
        self.tracer_config = config if config is not None else TracerConfig()
        wrap(self, self.tracer_config)
