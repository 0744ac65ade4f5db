"""OpenAI embeddings (``POST .../embeddings``): small deterministic vectors, float or base64."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    as_int,
    count_tokens,
    required_model,
)

__all__ = ["DEFAULT_DIMENSIONS", "embedding_vector", "embeddings_reply"]

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 3072
MAX_INPUTS = 2048
_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit-length float32 vector seeded by ``text`` (a prefix of a longer one, renormalised).

    Like OpenAI's ``text-embedding-3`` models, asking for fewer dimensions gives the
    renormalised prefix of the full vector.
    """
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        raw.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        block += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    # round-trip through float32, so the float and base64 encodings carry identical values
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _inputs(value: Any) -> list[tuple[str, int]]:
    """``(text, tokens)`` per input: a string, strings, token ids or lists of token ids."""
    if value is None:
        raise ApiError("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        if not value:
            raise ApiError(_INVALID_INPUT, param="input")
        return [(value, count_tokens(value))]
    if not isinstance(value, list) or not value:
        raise ApiError(_INVALID_INPUT, param="input")
    if all(as_int(v) is not None for v in value):
        return [("tokens:" + ",".join(str(v) for v in value), len(value))]
    if len(value) > MAX_INPUTS:
        raise ApiError(
            f"'$.input' is invalid: at most {MAX_INPUTS} inputs are allowed.", param="input"
        )
    out: list[tuple[str, int]] = []
    for item in value:
        if isinstance(item, str) and item:
            out.append((item, count_tokens(item)))
        elif isinstance(item, list) and item and all(as_int(v) is not None for v in item):
            out.append(("tokens:" + ",".join(str(v) for v in item), len(item)))
        else:
            raise ApiError(_INVALID_INPUT, param="input")
    return out


def embeddings_reply(
    request: dict[str, Any],
    ctl: Controls,
    *,
    model: str | None = None,
    allow_base64: bool = True,
) -> Reply:
    """Answer an embeddings request; ``model`` overrides the body's (Azure, Databricks)."""
    del ctl  # no control header shapes an embedding (errors are handled by the server)
    model = required_model(request, model)
    inputs = _inputs(request.get("input"))
    encoding = request.get("encoding_format")
    encoding = "float" if encoding is None else encoding
    if encoding not in ("float", "base64"):
        raise ApiError(
            f"{encoding!r} is not one of ['float', 'base64'] - 'encoding_format'",
            param="encoding_format",
        )
    if not allow_base64:
        encoding = "float"
    dimensions = request.get("dimensions")
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    elif "ada-002" in model:
        raise ApiError("This model does not support specifying dimensions.", param="dimensions")
    elif as_int(dimensions) is None or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise ApiError(
            f"Invalid 'dimensions': expected an integer between 1 and {MAX_DIMENSIONS}.",
            param="dimensions",
        )
    data: list[dict[str, Any]] = []
    for index, (text, _tokens) in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(t for _, t in inputs)
    return JsonReply(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
