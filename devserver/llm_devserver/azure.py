"""Azure OpenAI quirks: deployment -> model names, content-filter annotations, error bodies."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = [
    "azure_error",
    "azure_headers",
    "completion_filter_results",
    "deployment_model",
    "image_filter_results",
    "missing_api_version",
    "not_found",
    "prompt_filter_results",
]

DEFAULT_MODELS = {
    "chat": "gpt-4o-2024-08-06",
    "responses": "gpt-4o-2024-08-06",
    "completions": "gpt-35-turbo-instruct",
    "embeddings": "text-embedding-3-small",
    "images": "dall-e-3",
}
DEPLOYMENT_MODELS = {
    "my-gpt4o-deploy": "gpt-4o-2024-08-06",
    "gpt-4o": "gpt-4o-2024-08-06",
    "my-gpt4o-mini-deploy": "gpt-4o-mini-2024-07-18",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "my-instruct-deploy": "gpt-35-turbo-instruct",
    "gpt-35-turbo-instruct": "gpt-35-turbo-instruct",
    "my-embedding-deploy": "text-embedding-3-small",
    "text-embedding-3-small": "text-embedding-3-small",
    "text-embedding-3-large": "text-embedding-3-large",
    "text-embedding-ada-002": "text-embedding-ada-002",
    "my-dalle-deploy": "dall-e-3",
    "dall-e-3": "dall-e-3",
    "gpt-image-1": "gpt-image-1",
}
OPERATIONS = {
    "chat": "ChatCompletions_Create",
    "responses": "Responses_Create",
    "completions": "Completions_Create",
    "embeddings": "Embeddings_Create",
    "images": "ImageGenerations_Create",
}
_SAFE = {"filtered": False, "severity": "safe"}
_NOT_DETECTED = {"filtered": False, "detected": False}


def deployment_model(deployment: str, api: str) -> str:
    """The underlying model name Azure reports for ``deployment`` (``api``: chat, embeddings...)."""
    known = DEPLOYMENT_MODELS.get(deployment) or DEPLOYMENT_MODELS.get(deployment.lower())
    lowered = deployment.lower()
    if api == "images":
        if known is not None and known.startswith(("dall-e", "gpt-image")):
            return known
        return "gpt-image-1" if "gpt-image" in lowered else DEFAULT_MODELS["images"]
    if known is not None:
        return known
    if "embed" in lowered:
        return DEFAULT_MODELS["embeddings"]
    if "instruct" in lowered:
        return DEFAULT_MODELS["completions"]
    return DEFAULT_MODELS.get(api, DEFAULT_MODELS["chat"])


def _harm_categories() -> dict[str, Any]:
    return {name: dict(_SAFE) for name in ("hate", "self_harm", "sexual", "violence")}


def prompt_filter_results(n_prompts: int = 1) -> list[dict[str, Any]]:
    """``prompt_filter_results``: one clean verdict (with jailbreak detection) per prompt."""
    return [
        {
            "prompt_index": i,
            "content_filter_results": {**_harm_categories(), "jailbreak": dict(_NOT_DETECTED)},
        }
        for i in range(n_prompts)
    ]


def completion_filter_results() -> dict[str, Any]:
    """A choice's clean ``content_filter_results`` (with protected-material detection)."""
    return {
        **_harm_categories(),
        "protected_material_code": dict(_NOT_DETECTED),
        "protected_material_text": dict(_NOT_DETECTED),
    }


def image_filter_results(*, jailbreak: bool = False) -> dict[str, Any]:
    """An image's clean ``content_filter_results`` (``prompt_filter_results`` with
    ``jailbreak``), as Azure annotates each generated image."""
    results = _harm_categories()
    if jailbreak:
        results["jailbreak"] = dict(_NOT_DETECTED)
    return results


def azure_error(status: int, api: str, api_version: str | None, fallback: Any) -> Any:
    """The body Azure's gateway sends for a simulated ``status`` (``fallback`` otherwise)."""
    if status == 401:
        message = (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource."
        )
        return {"error": {"code": "401", "message": message}}
    if status == 403:
        message = "The principal does not have access to the deployment."
        return {"error": {"code": "PermissionDenied", "message": message}}
    if status == 404:
        message = (
            "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again."
        )
        return {"error": {"code": "DeploymentNotFound", "message": message}}
    if status == 429:
        operation = OPERATIONS.get(api, "ChatCompletions_Create")
        message = (
            f"Requests to the {operation} Operation under Azure OpenAI API version "
            f"{api_version or 'v1'} have exceeded token rate limit of your current OpenAI S0 "
            "pricing tier. Please retry after 0 seconds. Please go here: "
            "https://aka.ms/oai/quotaincrease if you would like to further increase the default "
            "rate limit."
        )
        return {"error": {"code": "429", "message": message}}
    return fallback


def missing_api_version() -> Any:
    """The body of the 400 answered to a deployment path without ``?api-version=``."""
    message = "The api-version query parameter (?api-version=) is required for all requests."
    return {"error": {"code": "MissingApiVersionParameter", "message": message}}


def not_found() -> Any:
    """The body of Azure's 404 for an unknown path."""
    return {"error": {"code": "404", "message": "Resource not found"}}


def azure_headers(deployment: str | None, elapsed_ms: int) -> dict[str, str]:
    """Response headers of Azure OpenAI (APIM in front of the model)."""
    request_id = str(uuid.uuid4())
    headers = {
        "apim-request-id": request_id,
        "x-request-id": request_id,
        "x-ms-region": "East US",
        "x-ms-rai-invoked": "true",
        "x-ms-client-request-id": "Not-Set",
        "azureml-model-session": "d001-20250101000000",
        "openai-processing-ms": str(elapsed_ms),
        "x-ratelimit-limit-requests": "1000",
        "x-ratelimit-limit-tokens": "1000000",
        "x-ratelimit-remaining-requests": "999",
        "x-ratelimit-remaining-tokens": "999990",
        "x-content-type-options": "nosniff",
        "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    }
    if deployment is not None:
        headers["x-ms-deployment-name"] = deployment
    return headers
