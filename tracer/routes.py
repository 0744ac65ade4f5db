"""Which wire API a request speaks, decided from its method and URL path: one table.

Anything the table does not recognise passes through the transport untouched and untraced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracer.apis.base import ApiSpec
from tracer.apis.chat import CHAT

__all__ = ["ROUTES", "Route", "match"]


@dataclass(frozen=True, slots=True)
class Route:
    """A path pattern (searched in the URL path) and the API that requests to it speak."""

    pattern: re.Pattern[str]
    api: ApiSpec


ROUTES: tuple[Route, ...] = (
    # OpenAI (/v1/chat/completions), vLLM and Ollama (/v1/...), Databricks
    # (/serving-endpoints/chat/completions), Azure (/openai/deployments/{d}/chat/completions).
    Route(re.compile(r"/chat/completions/?$"), CHAT),
)


def match(method: str, path: str) -> ApiSpec | None:
    """The API of a ``method`` request to ``path``, or ``None`` when it is not an LLM call."""
    if method != "POST":
        return None
    for route in ROUTES:
        if route.pattern.search(path):
            return route.api
    return None
