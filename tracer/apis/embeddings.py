"""OpenAI embeddings (``POST .../embeddings``).

The vectors themselves are not recorded unless ``TRACER_CAPTURE_EMBEDDINGS`` is set: the span
gets their count and dimension instead. The OpenAI SDK asks for ``encoding_format=base64`` by
default; such vectors are measured from their decoded byte length (little-endian float32) and,
when captured, decoded to floats.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from typing import Any

from tracer.apis.base import ApiSpec, ResponseSummary, embedding_attributes, error_message
from tracer.apis.chat import openai_usage
from tracer.apis.keep import COUNTS, ERROR, NUMBER, TEXT, Shape, one_of
from tracer.config import TracerConfig

__all__ = ["EMBEDDINGS", "Embeddings", "vector_length"]


def vector_length(embedding: Any) -> int | None:
    """The dimension of one embedding, given as a list of floats or a base64 string."""
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):
        try:
            return len(base64.b64decode(embedding, validate=True)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def _floats(embedding: Any) -> Any:
    if not isinstance(embedding, str):
        return embedding
    try:
        values = array("f", base64.b64decode(embedding, validate=True))
    except (binascii.Error, ValueError):
        return embedding
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


class Embeddings(ApiSpec):
    """OpenAI embeddings."""

    name = "embeddings"
    operation = "embeddings"
    span_type = "EMBEDDING"
    message_format = None
    content_keys = ("input",)
    kept_request: Shape = {
        "model": TEXT,
        "encoding_format": one_of("float", "base64"),
        "dimensions": NUMBER,
    }
    kept_response: Shape = {
        "object": TEXT,
        "model": TEXT,
        "usage": COUNTS,
        "error": ERROR,
        "data": [{"object": TEXT, "index": NUMBER, "dimensions": NUMBER}],
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Model, usage, error, and ``embeddings.count`` / ``embeddings.dimensions``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        model = response.get("model")
        summary = ResponseSummary(
            model=model if isinstance(model, str) and model else None,
            usage=openai_usage(response.get("usage")),
            error=error_message(response) if "error" in response else None,
        )
        data = response.get("data")
        if isinstance(data, list):
            summary.attributes.update(
                embedding_attributes(
                    [
                        vector_length(d.get("embedding")) if isinstance(d, dict) else None
                        for d in data
                    ]
                )
            )
        return summary

    def outputs(self, response: Any, config: TracerConfig) -> Any:
        """The response with each vector replaced by its dimension, or decoded to floats when
        embeddings (and content) are captured; reduced to :attr:`kept_response` when content
        capture is off."""
        if not config.capture_content:
            return self.strip_content(_vectors(response, decode=False))
        return _vectors(response, decode=config.capture_embeddings)


def _vectors(response: Any, decode: bool) -> Any:
    """``response`` with each vector decoded to floats (``decode``) or replaced by its
    dimension."""
    if not isinstance(response, dict) or not isinstance(response.get("data"), list):
        return response
    data = []
    for item in response["data"]:
        if not isinstance(item, dict) or "embedding" not in item:
            data.append(item)
            continue
        item = dict(item)
        vector = item.pop("embedding")
        if decode:
            item["embedding"] = _floats(vector)
        else:
            item["dimensions"] = vector_length(vector)
        data.append(item)
    return {**response, "data": data}


EMBEDDINGS = Embeddings()
