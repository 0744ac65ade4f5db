"""Cohere v2: chat (``POST /v2/chat``, streamed as typed events), embed (``/v2/embed``) and
rerank (``/v2/rerank``).

A chat stream — ``message-start``, ``content-start`` / ``content-delta`` / ``content-end``,
``tool-plan-delta``, ``tool-call-start`` / ``tool-call-delta`` / ``tool-call-end``,
``citation-start``, ``message-end`` — is rebuilt into the non-streaming ``ChatResponse``: each
event's ``delta.message`` merged by the rule of :mod:`tracer.apis.merge` (content items and
tool calls by their index, their text and arguments joined), the finish reason and usage of
``message-end``. Usage is the ``tokens`` Cohere reports (else its ``billed_units``).
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    embedding_attributes,
    error_message,
    parse_event,
    str_or_none,
    token_usage,
)
from tracer.apis.keep import COUNTS, FLAG, KIND, MESSAGE, NUMBER, TEXT, Shape, one_of
from tracer.apis.merge import Merged
from tracer.config import TracerConfig

__all__ = [
    "COHERE_CHAT",
    "COHERE_EMBED",
    "COHERE_RERANK",
    "CohereChat",
    "CohereChatStream",
    "CohereEmbed",
    "CohereRerank",
    "cohere_usage",
]

_ERROR = {"message": MESSAGE}


def cohere_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from a Cohere ``usage`` (or ``meta``) object: its
    ``tokens``, else its ``billed_units``, and its ``cached_tokens`` as cache reads."""
    if not isinstance(usage, dict):
        return None
    for key in ("tokens", "billed_units"):
        counts = usage.get(key)
        if isinstance(counts, dict):
            found = token_usage(
                counts.get("input_tokens"),
                counts.get("output_tokens"),
                cache_read=usage.get("cached_tokens"),
            )
            if found is not None:
                return found
    return None


def _error(response: dict[str, Any]) -> str | None:
    """Cohere's errors are ``{"id": ..., "message": "..."}`` (a chat's ``message`` is an
    object), or ``{"error": ...}`` behind a gateway."""
    if response.get("error") or isinstance(response.get("message"), str):
        return error_message(response)
    return None


class CohereChat(ApiSpec):
    """Cohere v2 chat."""

    name = "cohere.chat"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = None
    content_keys = ("messages", "documents")
    #: Never messages, documents, tool descriptions or schemas, or stop sequences.
    kept_request: Shape = {
        "model": TEXT,
        "stream": FLAG,
        "temperature": NUMBER,
        "p": NUMBER,
        "k": NUMBER,
        "max_tokens": NUMBER,
        "seed": NUMBER,
        "frequency_penalty": NUMBER,
        "presence_penalty": NUMBER,
        "safety_mode": one_of("CONTEXTUAL", "STRICT", "OFF"),
        "tool_choice": one_of("REQUIRED", "NONE"),
        "strict_tools": FLAG,
        "logprobs": FLAG,
        "response_format": {"type": one_of("text", "json_object")},
        "thinking": {"type": one_of("enabled", "disabled"), "token_budget": NUMBER},
        "tools": [{"type": KIND, "function": {"name": TEXT}}],
    }
    #: Never the message's content, tool plan, tool arguments or citations.
    kept_response: Shape = {
        "id": TEXT,
        "finish_reason": TEXT,
        "usage": COUNTS,
        "message": {
            "role": TEXT,
            "content": [{"type": TEXT}],
            "tool_calls": [{"id": TEXT, "type": TEXT, "function": {"name": TEXT}}],
        },
        **_ERROR,
    }

    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """Cohere's ``p`` and ``k`` under OpenAI's names."""
        renamed = dict(request)
        for old, new in (("p", "top_p"), ("k", "top_k"), ("stop_sequences", "stop")):
            if old in request:
                renamed[new] = request[old]
        return renamed

    def summarize(self, response: Any) -> ResponseSummary:
        """Usage, finish reason, id and error (Cohere's chat names no model: the request's
        is used)."""
        if not isinstance(response, dict):
            return ResponseSummary()
        reason = str_or_none(response.get("finish_reason"))
        return ResponseSummary(
            usage=cohere_usage(response.get("usage")),
            finish_reasons=[reason] if reason else [],
            response_id=str_or_none(response.get("id")),
            error=_error(response),
        )

    def reply_messages(self, response: Any) -> list[dict[str, Any]] | None:
        """The assistant's text and tool calls (already in OpenAI's form)."""
        message = response.get("message") if isinstance(response, dict) else None
        if not isinstance(message, dict):
            return None
        content = message.get("content")
        text = "".join(
            item["text"]
            for item in (content if isinstance(content, list) else ())
            if isinstance(item, dict)
            and item.get("type") == "text"
            and isinstance(item.get("text"), str)
        )
        reply: dict[str, Any] = {"role": "assistant", "content": text}
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            reply["tool_calls"] = [c for c in calls if isinstance(c, dict)]
        return [reply]

    def new_stream(self) -> CohereChatStream:
        """A fresh accumulator for one streamed chat."""
        return CohereChatStream()


COHERE_CHAT = CohereChat()

#: Delta events whose ``delta.message`` piece belongs to an indexed list of the message.
_INDEXED = {
    "content-start": "content",
    "content-delta": "content",
    "tool-call-start": "tool_calls",
    "tool-call-delta": "tool_calls",
}


class CohereChatStream(StreamBase):
    """Accumulates Cohere v2 chat stream events into one ``ChatResponse``."""

    __slots__ = ("_citations", "_end", "_id", "_message")
    end_markers = (b"message-end", b"error")

    def __init__(self) -> None:
        super().__init__()
        self._id: str | None = None
        self._message = Merged()
        self._citations: list[Any] = []
        self._end: dict[str, Any] = {}

    def add(self, event: str, data: str) -> None:
        """Take one typed event."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        delta = payload.get("delta")
        piece = delta.get("message") if isinstance(delta, dict) else None
        if kind == "message-start":
            self._id = str_or_none(payload.get("id")) or self._id
        if kind == "message-end":
            if isinstance(delta, dict):
                self._end.update({k: v for k, v in delta.items() if v is not None})
            self.completed = True
        elif kind == "citation-start" and isinstance(piece, dict):
            self._citations.append(piece.get("citations"))
        elif kind in _INDEXED and isinstance(piece, dict):
            field = _INDEXED[kind]
            item = piece.get(field)
            index = payload.get("index")
            if isinstance(item, dict) and isinstance(index, int):
                self._message.add({field: [{**item, "index": index}]})
        elif isinstance(piece, dict):  # message-start's role, tool-plan-delta, and the rest
            self._message.add(piece)
        elif kind == "error" or payload.get("error"):
            self._error = payload.get("error") or payload.get("message") or payload

    def result(self) -> dict[str, Any] | None:
        """The ``ChatResponse`` rebuilt from the events seen so far."""
        message = self._message.result()
        if self._id is None and not message and not self._end:
            return {"error": self._error} if self._error is not None else None
        message.setdefault("role", "assistant")
        if self._citations:
            message["citations"] = list(self._citations)
        result: dict[str, Any] = {"id": self._id, "message": message}
        result.update(self._end)
        if self._error is not None:
            result["error"] = self._error
        return result


class CohereEmbed(ApiSpec):
    """Cohere v2 embed: vectors replaced by their dimension unless
    ``TRACER_CAPTURE_EMBEDDINGS``."""

    name = "cohere.embed"
    operation = "embeddings"
    span_type = "EMBEDDING"
    message_format = None
    content_keys = ("texts", "inputs", "images")
    kept_request: Shape = {
        "model": TEXT,
        "input_type": KIND,
        "embedding_types": [KIND],
        "output_dimension": NUMBER,
        "truncate": one_of("NONE", "START", "END"),
    }
    kept_response: Shape = {
        "id": TEXT,
        "response_type": TEXT,
        "dimensions": COUNTS,
        "meta": {"billed_units": COUNTS},
        **_ERROR,
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Usage (billed input tokens), id, error, ``embeddings.count`` and
        ``embeddings.dimensions``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            usage=cohere_usage(response.get("meta")),
            response_id=str_or_none(response.get("id")),
            error=_error(response),
        )
        vectors = _by_type(response.get("embeddings"))
        if vectors:
            first = next(iter(vectors.values()))
            summary.attributes.update(
                embedding_attributes([len(v) if isinstance(v, list) else None for v in first])
            )
        return summary

    def outputs(self, response: Any, config: TracerConfig) -> Any:
        """The response with ``embeddings`` replaced by each type's vector dimensions
        (``dimensions``), unless embeddings (and content) are captured."""
        if isinstance(response, dict) and not (
            config.capture_embeddings and config.capture_content
        ):
            vectors = _by_type(response.get("embeddings"))
            if vectors is not None:
                response = {k: v for k, v in response.items() if k != "embeddings"}
                response["dimensions"] = {
                    kind: [len(v) if isinstance(v, list) else None for v in items]
                    for kind, items in vectors.items()
                }
        return super().outputs(response, config)


def _by_type(embeddings: Any) -> dict[str, list[Any]] | None:
    """Cohere's ``{"float": [[...]], "int8": [[...]]}`` (v1's bare list counts as floats)."""
    if isinstance(embeddings, list):
        return {"float": embeddings}
    if isinstance(embeddings, dict):
        return {k: v for k, v in embeddings.items() if isinstance(v, list)}
    return None


COHERE_EMBED = CohereEmbed()


class CohereRerank(ApiSpec):
    """Cohere v2 rerank: a ``RERANKER`` span."""

    name = "cohere.rerank"
    operation = "rerank"
    span_type = "RERANKER"
    message_format = None
    content_keys = ("query", "documents")
    kept_request: Shape = {"model": TEXT, "top_n": NUMBER, "max_tokens_per_doc": NUMBER}
    #: The ranking (indices and scores), not the documents.
    kept_response: Shape = {
        "id": TEXT,
        "results": [{"index": NUMBER, "relevance_score": NUMBER}],
        "meta": {"billed_units": COUNTS},
        **_ERROR,
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Id, error, ``rerank.count`` and ``rerank.search_units``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            response_id=str_or_none(response.get("id")), error=_error(response)
        )
        if isinstance(response.get("results"), list):
            summary.attributes["rerank.count"] = len(response["results"])
        meta = response.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        if isinstance(billed, dict) and isinstance(billed.get("search_units"), (int, float)):
            summary.attributes["rerank.search_units"] = billed["search_units"]
        return summary


COHERE_RERANK = CohereRerank()
