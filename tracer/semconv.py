"""OpenTelemetry GenAI semantic-convention attributes and the provider name.

Recorded alongside MLflow's own attributes so the same spans read well in any OpenTelemetry
backend (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/), and so MLflow
can price the call (``mlflow.llm.provider`` with ``mlflow.llm.model`` and the token usage).
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import ApiSpec, ResponseSummary

__all__ = ["USAGE_ATTRIBUTES", "provider", "request_attributes", "response_attributes"]

#: Request parameters and their GenAI attribute (``gen_ai.request.<name>``).
_REQUEST_PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "n": "choice.count",
    "stop": "stop_sequences",
    "stop_sequences": "stop_sequences",
    "encoding_format": "encoding_formats",
}

_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


#: Hosts of OpenAI-compatible providers, by the name MLflow's cost tables (LiteLLM's) use.
_HOSTS = {
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral",
    "api.deepseek.com": "deepseek",
    "api.together.xyz": "together_ai",
    "api.fireworks.ai": "fireworks_ai",
    "openrouter.ai": "openrouter",
    "api.x.ai": "xai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
}
#: SDKs that name their provider in their ``User-Agent`` (``Groq/Python 0.31.0``), for a call
#: through a proxy or a local server.
_AGENTS = (("groq/", "groq"), ("mistral", "mistral"), ("cohere", "cohere"))


def provider(
    api: ApiSpec,
    host: str,
    path: str,
    deployment: str | None,
    endpoint: str | None,
    user_agent: str = "",
) -> str:
    """The provider, as MLflow's cost tables name it: ``openai``, ``azure``, ``databricks``,
    ``anthropic``, ``gemini``, ``vertex_ai``, ``ollama``, ``groq``, ``mistral``, ... (by the
    API, the host, or the SDK's ``User-Agent``); for any other OpenAI-compatible server, its
    host."""
    host = host.lower()
    if api.name == "anthropic.messages" or host.endswith("anthropic.com"):
        return "anthropic"
    if api.name.startswith("gemini."):
        vertex = "/projects/" in path or host.endswith("aiplatform.googleapis.com")
        return "vertex_ai" if vertex else "gemini"
    if api.name.startswith("ollama."):
        return "ollama"
    if api.name.startswith("cohere."):
        return "cohere"
    if host in _HOSTS:
        return _HOSTS[host]
    agent = user_agent.lower()
    for marker, name in _AGENTS:
        if marker in agent:
            return name
    if deployment or host.endswith(_AZURE_HOSTS) or path.startswith("/openai/"):
        return "azure"
    if endpoint or "/serving-endpoints/" in path or "databricks" in host:
        return "databricks"
    if host == "api.openai.com" or host.endswith(".openai.com"):
        return "openai"
    return host


def request_attributes(
    api: ApiSpec, provider_name: str, model: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    """``gen_ai.*`` attributes known when the request is sent."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": api.operation,
        "gen_ai.provider.name": provider_name,
        "mlflow.llm.provider": provider_name,
    }
    if model:
        attributes["gen_ai.request.model"] = model
    parameters = api.parameters(body)
    for key, name in _REQUEST_PARAMETERS.items():
        value = parameters.get(key)
        if value is None:
            continue
        if name in ("stop_sequences", "encoding_formats") and not isinstance(value, list):
            value = [value]
        attributes[f"gen_ai.request.{name}"] = value
    return attributes


def response_attributes(summary: ResponseSummary) -> dict[str, Any]:
    """``gen_ai.*`` attributes of the response."""
    attributes: dict[str, Any] = {}
    if summary.model:
        attributes["gen_ai.response.model"] = summary.model
    if summary.response_id:
        attributes["gen_ai.response.id"] = summary.response_id
    if summary.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = summary.finish_reasons
    if summary.usage:
        attributes["gen_ai.usage.input_tokens"] = summary.usage.get("input_tokens", 0)
        attributes["gen_ai.usage.output_tokens"] = summary.usage.get("output_tokens", 0)
        for key, name in _CACHE_USAGE.items():
            if key in summary.usage:
                attributes[name] = summary.usage[key]
    if summary.reasoning_tokens is not None:
        attributes["gen_ai.usage.reasoning.output_tokens"] = summary.reasoning_tokens
    return attributes


#: MLflow's cache keys of ``mlflow.chat.tokenUsage`` and their OpenTelemetry GenAI names.
_CACHE_USAGE = {
    "cache_read_input_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_creation_input_tokens": "gen_ai.usage.cache_creation.input_tokens",
}

#: The usage attributes that count a call's tokens (left out where MLflow's own autolog
#: records the call's usage, so that the trace counts it once).
USAGE_ATTRIBUTES = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    *_CACHE_USAGE.values(),
)
