"""Which wire API a request speaks, decided from its URL path (and, for Databricks'
``/invocations``, its body): one table.

Anything the table does not recognise passes through the transport untouched and untraced.
Users add routes for their own gateway paths with ``TracerConfig(routes={pattern: api})``
(``TRACER_ROUTES`` as JSON), checked before the built-in table.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tracer.apis.anthropic import MESSAGES
from tracer.apis.audio import MODERATIONS, SPEECH, TRANSCRIPTIONS, TRANSLATIONS
from tracer.apis.base import ApiSpec
from tracer.apis.chat import CHAT
from tracer.apis.cohere import COHERE_CHAT, COHERE_EMBED, COHERE_RERANK
from tracer.apis.completions import COMPLETIONS
from tracer.apis.embeddings import EMBEDDINGS
from tracer.apis.gemini import GEMINI_EMBED, GEMINI_GENERATE
from tracer.apis.images import IMAGES
from tracer.apis.ollama import OLLAMA_CHAT, OLLAMA_EMBED, OLLAMA_GENERATE
from tracer.apis.responses import RESPONSES

__all__ = ["APIS", "ROUTES", "Route", "RouteMatch", "api_for_body", "match"]

#: The APIs by the names custom routes use (``config.API_NAMES``, in the same order).
APIS: dict[str, ApiSpec] = {
    "chat": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "responses": RESPONSES,
    "anthropic.messages": MESSAGES,
    "images.generations": IMAGES,
    "moderations": MODERATIONS,
    "audio.transcriptions": TRANSCRIPTIONS,
    "audio.translations": TRANSLATIONS,
    "audio.speech": SPEECH,
    "gemini.generate_content": GEMINI_GENERATE,
    "gemini.embed_content": GEMINI_EMBED,
    "cohere.chat": COHERE_CHAT,
    "cohere.embed": COHERE_EMBED,
    "cohere.rerank": COHERE_RERANK,
    "ollama.chat": OLLAMA_CHAT,
    "ollama.generate": OLLAMA_GENERATE,
    "ollama.embed": OLLAMA_EMBED,
}


@dataclass(frozen=True, slots=True)
class Route:
    """A pattern searched in the URL path, and the API requests to it speak (``None``: decided
    by the body). A named group ``endpoint`` (a Databricks serving endpoint) or ``model`` (a
    model named in the path, as Gemini's) gives the model when the body has none."""

    pattern: re.Pattern[str]
    api: ApiSpec | None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A recognised request: its API (or ``None`` until the body decides), and the model-like
    names its path carries."""

    api: ApiSpec | None
    endpoint: str | None = None
    deployment: str | None = None
    model: str | None = None


ROUTES: tuple[Route, ...] = (
    # Databricks model serving: the endpoint is the model; the body says which API.
    Route(re.compile(r"/serving-endpoints/(?P<endpoint>[^/]+)/invocations/?$"), None),
    # OpenAI, vLLM, Ollama, Databricks (/serving-endpoints/chat/completions), Azure
    # (/openai/deployments/{deployment}/..., /openai/v1/...) and other compatible servers.
    Route(re.compile(r"/chat/completions/?$"), CHAT),
    Route(re.compile(r"/completions/?$"), COMPLETIONS),
    Route(re.compile(r"/embeddings/?$"), EMBEDDINGS),
    Route(re.compile(r"/responses/?$"), RESPONSES),
    Route(re.compile(r"/v1/messages/?$"), MESSAGES),
    # Image generation (a JSON body); edits and variations are multipart uploads, not traced.
    Route(re.compile(r"/images/generations/?$"), IMAGES),
    Route(re.compile(r"/moderations/?$"), MODERATIONS),
    Route(re.compile(r"/audio/transcriptions/?$"), TRANSCRIPTIONS),
    Route(re.compile(r"/audio/translations/?$"), TRANSLATIONS),
    Route(re.compile(r"/audio/speech/?$"), SPEECH),
    # Gemini: the Developer API (/v1beta/models/{model}:...) and Vertex AI
    # (/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:...), tuned models and
    # Vertex endpoints alike.
    Route(
        re.compile(
            r"/(?:models|tunedModels|endpoints)/(?P<model>[^/:]+)"
            r":(?:generateContent|streamGenerateContent)$"
        ),
        GEMINI_GENERATE,
    ),
    Route(
        re.compile(
            r"/(?:models|tunedModels|endpoints)/(?P<model>[^/:]+)"
            r":(?:embedContent|batchEmbedContents)$"
        ),
        GEMINI_EMBED,
    ),
    # Cohere v2.
    Route(re.compile(r"/v2/chat/?$"), COHERE_CHAT),
    Route(re.compile(r"/v2/embed/?$"), COHERE_EMBED),
    Route(re.compile(r"/v2/rerank/?$"), COHERE_RERANK),
    # Ollama's native API (its OpenAI-compatible /v1/... paths are matched above).
    Route(re.compile(r"/api/chat/?$"), OLLAMA_CHAT),
    Route(re.compile(r"/api/generate/?$"), OLLAMA_GENERATE),
    Route(re.compile(r"/api/embed(?:dings)?/?$"), OLLAMA_EMBED),
)

_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")

#: Every built-in pattern in one (groups unnamed): a single search tells most requests, which
#: match none, apart, about five times faster than trying each route.
ANY_ROUTE = re.compile(
    "|".join(f"(?:{re.sub(r'[(][?]P<[a-z_]+>', '(?:', r.pattern.pattern)})" for r in ROUTES)
)


@functools.lru_cache(maxsize=32)
def _custom(routes: tuple[tuple[str, str], ...]) -> tuple[Route, ...]:
    return tuple(Route(re.compile(pattern), APIS[name]) for pattern, name in routes)


def match(method: str, path: str, custom: Mapping[str, str] | None = None) -> RouteMatch | None:
    """The route of a ``method`` request to ``path``, or ``None`` when it is not an LLM call."""
    if method != "POST":
        return None
    builtin = ROUTES if ANY_ROUTE.search(path) is not None else ()
    table = _custom(tuple(custom.items())) + builtin if custom else builtin
    for route in table:
        found = route.pattern.search(path)
        if found is not None:
            deployment = _AZURE_DEPLOYMENT.search(path)
            groups = found.groupdict()
            return RouteMatch(
                route.api,
                endpoint=groups.get("endpoint"),
                deployment=deployment.group(1) if deployment else None,
                model=unquote(groups["model"]) if groups.get("model") else None,
            )
    return None


def api_for_body(body: Any) -> ApiSpec:
    """The API a Databricks ``/invocations`` body speaks: chat unless it has a prompt
    (completions) or an input (embeddings)."""
    if isinstance(body, dict) and "messages" not in body:
        if "prompt" in body:
            return COMPLETIONS
        if "input" in body:
            return EMBEDDINGS
    return CHAT
