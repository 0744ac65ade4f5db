"""Tracer configuration: a pydantic model whose defaults come from ``TRACER_*`` variables.

Settings MLflow already owns (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``,
``MLFLOW_TRACE_SAMPLING_RATIO``, ``DATABRICKS_HOST``/``DATABRICKS_TOKEN``) are read by MLflow
itself and deliberately not copied here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from tracer.failsafe import warn_once
from tracer.sampling import SampleRule

__all__ = ["API_NAMES", "ENV_PREFIX", "TracerConfig"]

ENV_PREFIX = "TRACER_"
ExportMode = Literal["process", "mlflow", "none"]
ChunkEvents = Literal["off", "summary", "all"]
_Routes = TypeVar("_Routes")


#: The wire APIs by the names custom routes use (``routes.APIS`` holds one spec for each). Kept
#: here, below the APIs, so that a configuration is checked without importing them.
API_NAMES: tuple[str, ...] = (
    "chat",
    "completions",
    "embeddings",
    "responses",
    "anthropic.messages",
    "images.generations",
    "moderations",
    "audio.transcriptions",
    "audio.translations",
    "audio.speech",
    "gemini.generate_content",
    "gemini.embed_content",
    "cohere.chat",
    "cohere.embed",
    "cohere.rerank",
    "ollama.chat",
    "ollama.generate",
    "ollama.embed",
)

#: A size in bytes: a whole number, 0 or more. The field and its variable share this rule.
ByteCount = Annotated[int, Field(ge=0)]


def _from_env(name: str, default: Any, kind: Any) -> Any:
    """Read ``TRACER_<NAME>`` by the same rules as the field it defaults (``kind``: the
    field's type, constraints included); a value that breaks them warns once, naming the
    variable and the rule, and the default is used.

    A typo in a tracing variable must never stop the application it observes. ``kind`` is
    anything pydantic validates against: a class or a typing form (``Literal``, ``dict[...]``,
    ``Annotated[int, Field(ge=0)]``).
    """
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None or raw.strip() == "":
        return default
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(kind)
        if kind is ExportMode or kind is ChunkEvents:
            return adapter.validate_python(raw.strip().lower())  # as the booleans: any case
        if isinstance(default, dict):
            return _check_routes(adapter.validate_json(raw))
        return adapter.validate_python(raw.strip())
    except ValidationError as exc:
        rule = "; ".join(error["msg"] for error in exc.errors(include_url=False))
    except ValueError as exc:
        rule = str(exc)
    warn_once(  # once per value: every client built reads the environment again
        ("env", name, raw),
        "tracer: ignoring %s%s=%r (%s); using the default %r",
        ENV_PREFIX,
        name,
        raw,
        rule,
        default,
    )
    return default


def _check_routes(routes: _Routes) -> _Routes:
    if isinstance(routes, dict):
        for pattern, api in routes.items():
            if api not in API_NAMES:
                raise ValueError(
                    f"unknown API {api!r} for route {pattern!r}; one of {sorted(API_NAMES)}"
                )
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"route {pattern!r} is not a valid regular expression: {exc}"
                ) from exc
    return routes


class TracerConfig(BaseModel):
    """How the tracer behaves. Every field defaults to its ``TRACER_*`` environment variable.

    The configuration is read once, when a client or transport is built; change it by building
    a new ``TracerConfig`` (it is immutable).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default_factory=lambda: _from_env("ENABLED", True, bool),
        description="TRACER_ENABLED: record spans at all. When false, requests pass straight "
        "through and nothing is recorded.",
    )
    capture_content: bool = Field(
        default_factory=lambda: _from_env("CAPTURE_CONTENT", True, bool),
        description="TRACER_CAPTURE_CONTENT: record prompts and completions. When false, spans "
        "keep only an allow-list per API (model, sampling and length parameters, tool names, "
        "ids, usage, finish reasons, timings; see docs/configuration.md) and drop every other "
        "field, whatever its name.",
    )
    max_body_bytes: ByteCount = Field(
        default_factory=lambda: _from_env("MAX_BODY_BYTES", 8 * 1024 * 1024, ByteCount),
        description="TRACER_MAX_BODY_BYTES: request or response bodies (and single stream "
        "events) larger than this are passed through unparsed, and the span says so.",
    )
    capture_embeddings: bool = Field(
        default_factory=lambda: _from_env("CAPTURE_EMBEDDINGS", False, bool),
        description="TRACER_CAPTURE_EMBEDDINGS: record embedding vectors (decoded to floats). "
        "By default spans record each vector's dimension and the count, not the vectors.",
    )
    capture_media: bool = Field(
        default_factory=lambda: _from_env("CAPTURE_MEDIA", False, bool),
        description="TRACER_CAPTURE_MEDIA: record inline base64 media (images, audio, files "
        "in requests and responses, streamed or not, and generated b64_json images) as sent. "
        "By default each is replaced by a short placeholder naming its media type and size. "
        "With this on, MLflow's own MLFLOW_TRACE_EXTRACT_ATTACHMENTS can store them as trace "
        "attachments.",
    )
    redact: Callable[[Any, str], Any] | None = Field(
        default=None,
        description="A function ``redact(value, field)`` that rewrites the span's inputs "
        "(``field == 'inputs'``) and outputs (``'outputs'``) before they are recorded. If it "
        "raises, that value is not recorded at all.",
    )
    routes: dict[str, str] = Field(
        default_factory=lambda: _from_env("ROUTES", {}, dict[str, str]),
        description="TRACER_ROUTES (JSON): extra routes for custom gateway paths, a regular "
        "expression searched in the URL path mapped to the API it speaks: chat, completions, "
        "embeddings, responses, anthropic.messages, images.generations, moderations, "
        "audio.transcriptions, audio.translations, audio.speech, gemini.generate_content, "
        "gemini.embed_content, cohere.chat, cohere.embed, cohere.rerank, ollama.chat, "
        "ollama.generate or ollama.embed. Checked before the "
        "built-in routes.",
    )
    propagate_context: bool = Field(
        default_factory=lambda: _from_env("PROPAGATE_CONTEXT", False, bool),
        description="TRACER_PROPAGATE_CONTEXT: add a W3C `traceparent` header carrying the LLM "
        "span's trace and span ids to each traced request, so an instrumented server (an MLflow "
        "AI Gateway, a vLLM or in-house gateway with OpenTelemetry) joins the caller's trace. Off "
        "by default because it changes the request the server receives.",
    )
    export: ExportMode = Field(
        default_factory=lambda: _from_env("EXPORT", "process", ExportMode),
        description="TRACER_EXPORT: who writes finished traces to MLflow's store, for the "
        "whole process (read once; a client with another value is ignored with a warning). "
        "`process` (default): one export process per application process takes over the writes "
        "of MLflow's asynchronous exporter, so they cost the application nothing; `mlflow`: "
        "MLflow's own exporter in this process; `none`: traces that are one LLM call the "
        "tracer recorded are not written (for measuring instrumentation alone).",
    )
    sample: SampleRule | None = Field(
        default_factory=lambda: _from_env("SAMPLE", None, SampleRule | None),
        description="TRACER_SAMPLE: keep-by-outcome sampling of root LLM spans, e.g. "
        "`ratio=0.1,slower_than=2s,tokens_over=4000`: every error (unless `errors=false`), "
        "every call slower than the threshold or above the token count, and the ratio of the "
        "rest; what is left out is counted in tracer.export.stats(). Unset: every span is kept "
        "(MLflow's MLFLOW_TRACE_SAMPLING_RATIO applies either way).",
    )
    chunk_events: ChunkEvents = Field(
        default_factory=lambda: _from_env("CHUNK_EVENTS", "off", ChunkEvents),
        description="TRACER_CHUNK_EVENTS: a stream's timeline as span events. `off` (default): "
        "the time to first chunk and the chunk count only; `summary`: the first and last chunk "
        "and the five longest gaps between chunks, with their offsets; `all`: one event per "
        "stream event with its data, as mlflow.openai.autolog() records them.",
    )
    strict: bool = Field(
        default_factory=lambda: _from_env("STRICT", False, bool),
        description="TRACER_STRICT: raise the tracer's own internal errors instead of logging "
        "them once and carrying on untraced. Meant for test suites, never for production.",
    )

    @field_validator("routes")
    @classmethod
    def _known_apis(cls, routes: dict[str, str]) -> dict[str, str]:
        return _check_routes(routes)
