"""Databricks Model Serving: ``/serving-endpoints/{name}/invocations`` and its error bodies."""

from __future__ import annotations

from typing import Any

from llm_devserver.chat import chat_reply
from llm_devserver.common import ApiError, Controls, Reply
from llm_devserver.completions import completions_reply
from llm_devserver.embeddings import embeddings_reply

__all__ = ["databricks_error", "invocations_reply"]

ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "Bad request (simulated by the dev server)."),
    401: ("UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API."),
    403: ("PERMISSION_DENIED", "You do not have permission to query this endpoint."),
    404: ("RESOURCE_DOES_NOT_EXIST", "The given endpoint does not exist."),
    429: (
        "REQUEST_LIMIT_EXCEEDED",
        "Exceeded workspace rate limit for the endpoint. Please retry later.",
    ),
    500: ("INTERNAL_ERROR", "The server encountered an internal error."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."),
    504: ("DEADLINE_EXCEEDED", "The request timed out."),
}


def databricks_error(status: int, message: str | None = None) -> dict[str, Any]:
    """A Databricks REST error body ``{"error_code": ..., "message": ...}``."""
    code, default = ERROR_CODES.get(
        status, ("INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST", f"Error ({status}).")
    )
    if status == 400 and message is not None:
        code = "INVALID_PARAMETER_VALUE"
    return {"error_code": code, "message": message or default}


def invocations_reply(
    endpoint: str, request: dict[str, Any], ctl: Controls, *, fingerprint: str
) -> Reply:
    """Route an invocation by its body: ``messages`` (chat), ``prompt`` or ``input``."""
    if "messages" in request:
        return chat_reply(request, ctl, fingerprint=fingerprint, model=endpoint)
    if "prompt" in request:
        return completions_reply(request, ctl, fingerprint=fingerprint, model=endpoint)
    if "input" in request:
        return embeddings_reply(request, ctl, model=endpoint, allow_base64=False)
    raise ApiError(
        "Invalid input: the request body must contain one of 'messages' (chat), 'prompt' "
        "(completions) or 'input' (embeddings)."
    )
