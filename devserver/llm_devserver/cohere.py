"""Cohere's v2 API, as the ``cohere`` SDK (``cohere.ClientV2`` / ``AsyncClientV2``) speaks it.

* ``POST /v2/chat`` -- messages (``system``/``user``/``assistant``/``tool``), ``tools`` (one
  ``get_weather`` call per city, with a ``tool_plan``), ``documents`` (cited answers),
  ``thinking``, ``max_tokens``, ``stop_sequences``, ``logprobs``. With ``"stream": true`` the
  answer is an SSE stream of typed events (``event: <type>`` plus ``data:`` JSON carrying the
  same ``type``): ``message-start``, ``content-start``/``-delta``/``-end``, ``tool-plan-delta``,
  ``tool-call-start``/``-delta``/``-end``, ``citation-start``/``-end``, ``message-end`` (finish
  reason and usage), then ``data: [DONE]``. A broken stream ends with a ``message-end`` whose
  ``finish_reason`` is ``ERROR`` and ``delta.error`` says why.
* ``POST /v2/embed`` -- ``texts`` / ``images`` / ``inputs`` to ``embeddings`` by type (``float``,
  ``int8``, ``uint8``, ``binary``, ``ubinary``, ``base64``; 8 dimensions unless
  ``output_dimension``).
* ``POST /v2/rerank`` -- ``documents`` ranked by their word overlap with the ``query``.

Every call needs a bearer token (any value). Errors are ``{"id": "<uuid>", "message": "..."}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    compact,
    content_text,
    count_tokens,
    default_answer,
    event_frame,
    find_cities,
    keywords,
    logprob_value,
    plan_tool_args,
    rand_alnum,
    rand_hex,
    split_pieces,
    truncate_keep,
)
from llm_devserver.embeddings import DEFAULT_DIMENSIONS, MAX_DIMENSIONS, embedding_vector

__all__ = [
    "PARSE_ERROR",
    "chat_reply",
    "check_auth",
    "cohere_error",
    "embed_reply",
    "rerank_reply",
    "response_headers",
]

PARSE_ERROR = "invalid request: failed to parse the request body as JSON"
STREAM_ERROR = "internal server error, this has been reported to our developers"
API_VERSION = {"version": "2"}
PROMPT_OVERHEAD = 180  # the tokens of Cohere's prompt template around the messages
MAX_EMBED_TEXTS = 96
EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
_ERRORS: dict[int, str] = {
    400: "invalid request (simulated by the dev server)",
    401: "invalid api token",
    403: "forbidden: you do not have access to this resource",
    404: "model '{model}' not found, make sure the correct model ID was used and that you have "
    "access to the model.",
    422: "unprocessable entity",
    429: "You are using a Trial key, which is limited to 20 API calls / minute. You can continue "
    "to use the Trial key for free or upgrade to a Production key with higher rate limits at "
    "'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or "
    "email us at support@cohere.com with any questions",
    498: "invalid api token",
    499: "request cancelled by the client",
    500: "internal server error, this has been reported to our developers",
    501: "not implemented",
    503: "service unavailable, please try again later",
    504: "gateway timeout, please try again later",
}


def cohere_error(status: int, message: str | None = None, *, model: str = "") -> dict[str, Any]:
    """Cohere's error body ``{"id", "message"}`` (a stock message per status unless given)."""
    if message is None:
        template = _ERRORS.get(status, f"request failed with status {status}")
        message = template.format(model=model or "unknown")
    return {"id": str(uuid.uuid4()), "message": message}


def check_auth(headers: dict[str, str]) -> None:
    """Reject a request without a bearer token (401, as Cohere does)."""
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        raise ApiError("no api key supplied", status=401)


def response_headers(elapsed_ms: int) -> dict[str, str]:
    """The headers Cohere's front end adds to every answer."""
    return {
        "x-debug-trace-id": rand_hex(32),
        "x-envoy-upstream-service-time": str(elapsed_ms),
        "vary": "Origin",
    }


def _model(request: dict[str, Any]) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("invalid request: model must be a non-empty string")
    return model


# --------------------------------------------------------------------------------------------
# Chat: reading the request
# --------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """Something an answer can cite: a tool result or a document."""

    kind: str  # "tool" or "document"
    source_id: str
    payload: dict[str, Any]
    snippet: str

    def as_json(self) -> dict[str, Any]:
        """The citation ``sources[]`` entry."""
        key = "tool_output" if self.kind == "tool" else "document"
        return {"type": self.kind, "id": self.source_id, key: self.payload}


def _text_payload(text: str) -> dict[str, Any]:
    """A tool result string as Cohere reports it in a citation: parsed JSON, else ``text``."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _snippet(data: dict[str, Any]) -> str:
    for key in ("snippet", "text", "content", "title"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return compact(data)


def _tool_sources(messages: list[Any]) -> list[_Source]:
    """The citable results of the trailing ``tool`` messages, in order."""
    trailing: list[dict[str, Any]] = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        trailing.append(message)
    sources: list[_Source] = []
    for message in reversed(trailing):
        call_id = message.get("tool_call_id")
        call_id = call_id if isinstance(call_id, str) else "tool"
        content = message.get("content")
        blocks = content if isinstance(content, list) else [content]
        for k, block in enumerate(blocks):
            source_id = f"{call_id}:{k}"
            if isinstance(block, str):
                sources.append(_Source("tool", source_id, _text_payload(block), block))
            elif isinstance(block, dict) and block.get("type") == "document":
                document = block.get("document")
                data = document.get("data") if isinstance(document, dict) else None
                data = data if isinstance(data, dict) else {}
                sources.append(_Source("tool", source_id, data, _snippet(data)))
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                text = block["text"]
                sources.append(_Source("tool", source_id, _text_payload(text), text))
    return sources


def _document_sources(documents: Any) -> list[_Source]:
    """The citable ``documents`` of a RAG request (strings or ``{"id", "data"}`` objects)."""
    sources: list[_Source] = []
    for i, item in enumerate(documents if isinstance(documents, list) else []):
        if isinstance(item, str):
            doc_id = f"doc:{i}"
            sources.append(_Source("document", doc_id, {"id": doc_id, "snippet": item}, item))
        elif isinstance(item, dict):
            data = item.get("data")
            data = data if isinstance(data, dict) else {}
            given = item.get("id")
            doc_id = given if isinstance(given, str) and given else f"doc:{i}"
            sources.append(_Source("document", doc_id, {"id": doc_id, **data}, _snippet(data)))
    return sources


def _function_tools(tools: Any) -> list[dict[str, Any]]:
    funcs: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        func = tool.get("function")
        if isinstance(func, dict) and isinstance(func.get("name"), str):
            funcs.append(func)
    return funcs


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "document":
                document = part.get("document")
                data = document.get("data") if isinstance(document, dict) else None
                parts.append(compact(data) if data is not None else "")
            else:
                parts.append(content_text([part]))
        return " ".join(parts)
    return content_text(content)


def _input_tokens(request: dict[str, Any], messages: list[Any]) -> int:
    total = 0
    for message in messages:
        if isinstance(message, dict):
            total += count_tokens(_message_text(message))
            for key in ("tool_calls", "tool_plan"):
                if message.get(key):
                    total += count_tokens(compact(message[key]))
    for key in ("tools", "documents"):
        if request.get(key):
            total += count_tokens(compact(request[key]))
    return max(1, total)


# --------------------------------------------------------------------------------------------
# Chat: the answer
# --------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    """What the model says, and why it stopped."""

    thinking: str | None = None
    text: str | None = None
    tool_plan: str | None = None
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, args)
    citations: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "COMPLETE"

    def output_tokens(self) -> int:
        """Billed output tokens: thinking, text, plan and calls."""
        total = count_tokens(self.thinking or "") + count_tokens(self.text or "")
        total += count_tokens(self.tool_plan or "")
        return total + sum(count_tokens(f"{name} {args}") + 3 for _, name, args in self.tool_calls)

    @property
    def text_index(self) -> int:
        """The index of the text content block (after the thinking block, if any)."""
        return 1 if self.thinking is not None else 0


def _thinks(request: dict[str, Any], model: str) -> bool:
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        return True
    return kind != "disabled" and "reasoning" in model


def _cited_text(prefix: str, sources: list[_Source], content_index: int) -> tuple[str, list[Any]]:
    """``prefix`` then each source's snippet, with a citation for each snippet."""
    text = prefix
    citations: list[dict[str, Any]] = []
    for k, source in enumerate(sources):
        if k:
            text += "; "
        start = len(text)
        text += source.snippet
        citations.append(
            {
                "start": start,
                "end": len(text),
                "text": source.snippet,
                "sources": [source.as_json()],
                "content_index": content_index,
                "type": "TEXT_CONTENT",
            }
        )
    return text, citations


def _plan_text(calls: list[tuple[str, str, str]], last_user: str) -> str:
    name = calls[0][1]
    cities = find_cities(last_user)
    if name == "get_weather" and cities:
        places = cities[0] if len(cities) == 1 else f"{', '.join(cities[:-1])} and {cities[-1]}"
        return f"I will look up the weather in {places} with the get_weather tool."
    return f"I will use the {name} tool to answer the user's question."


def _answer(request: dict[str, Any], ctl: Controls, model: str) -> _Answer:
    messages: list[Any] = request["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = _message_text(message)
            break
    funcs = _function_tools(request.get("tools"))
    choice = request.get("tool_choice")
    use_tools = bool(funcs) and choice != "NONE" and last.get("role") != "tool"
    tool_results = _tool_sources(messages) if last.get("role") == "tool" else []
    documents = _document_sources(request.get("documents"))

    answer = _Answer()
    if _thinks(request, model):
        if use_tools:
            answer.thinking = "The user needs live data, so I should call a tool first."
        elif tool_results:
            answer.thinking = "The tools returned their results. I should summarise them."
        else:
            question = " ".join(last_user.split())[:200]
            answer.thinking = f'The user asks: "{question}". I should answer clearly.'
    if use_tools:
        answer.tool_calls = [
            (f"{name}_{rand_alnum(12).lower()}", name, compact(args))
            for name, args in plan_tool_args(funcs, None, last_user)
        ]
        answer.tool_plan = _plan_text(answer.tool_calls, last_user)
        answer.finish_reason = "TOOL_CALL"
        return answer

    index = answer.text_index
    citations: list[dict[str, Any]]
    if ctl.reply is not None:
        text, citations = ctl.reply, []
    elif tool_results:
        text, citations = _cited_text("Based on the tools: ", tool_results, index)
    elif documents:
        text, citations = _cited_text("According to the documents: ", documents, index)
    else:
        text, citations = default_answer(last_user), []
    stops = request.get("stop_sequences")
    cut_at = [text.index(s) for s in stops or [] if isinstance(s, str) and s and s in text]
    if cut_at:
        text = text[: min(cut_at)]
        answer.finish_reason = "STOP_SEQUENCE"
    limit = as_int(request.get("max_tokens"))
    text, cut = truncate_keep(text, limit if limit is not None and limit >= 0 else None)
    if cut:
        answer.finish_reason = "MAX_TOKENS"
    answer.text = text
    answer.citations = [c for c in citations if c["end"] <= len(text)]
    return answer


def _logprob_item(piece: str, position: int) -> dict[str, Any]:
    token_id = int.from_bytes(hashlib.sha256(piece.encode()).digest()[:2], "big")
    return {"text": piece, "token_ids": [token_id], "logprobs": [logprob_value(position)]}


def _usage(input_tokens: int, output_tokens: int, ctl: Controls) -> dict[str, Any]:
    cached = ctl.cached_tokens if ctl.cached_tokens is not None else 0
    return {
        "billed_units": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "tokens": {
            "input_tokens": input_tokens + PROMPT_OVERHEAD,
            "output_tokens": output_tokens + 2,
        },
        "cached_tokens": max(0, cached),
    }


def _message(answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    content: list[dict[str, Any]] = []
    if answer.thinking is not None:
        content.append({"type": "thinking", "thinking": answer.thinking})
    if answer.text is not None:
        content.append({"type": "text", "text": answer.text})
    if answer.tool_plan is not None:
        message["tool_plan"] = answer.tool_plan
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in answer.tool_calls
        ]
    if content:
        message["content"] = content
    if answer.citations:
        message["citations"] = answer.citations
    return message


def _stream_error(_sent: int) -> bytes:
    end = {"type": "message-end", "delta": {"error": STREAM_ERROR, "finish_reason": "ERROR"}}
    return event_frame("message-end", end) + b"data: [DONE]\n\n"


def _stream(chat_id: str, answer: _Answer, usage: dict[str, Any], logprobs: bool) -> StreamReply:
    events: list[dict[str, Any]] = [
        {
            "id": chat_id,
            "type": "message-start",
            "delta": {
                "message": {
                    "role": "assistant",
                    "content": [],
                    "tool_plan": "",
                    "tool_calls": [],
                    "citations": [],
                }
            },
        }
    ]

    def content_block(index: int, kind: str, text: str, with_logprobs: bool) -> None:
        start = {"type": kind, kind: ""}
        events.append(
            {"type": "content-start", "index": index, "delta": {"message": {"content": start}}}
        )
        for k, piece in enumerate(split_pieces(text)):
            event: dict[str, Any] = {
                "type": "content-delta",
                "index": index,
                "delta": {"message": {"content": {kind: piece}}},
            }
            if with_logprobs:
                event["logprobs"] = _logprob_item(piece, k)
            events.append(event)
        if kind == "text":
            for j, citation in enumerate(answer.citations):
                delta = {"message": {"citations": citation}}
                events.append({"type": "citation-start", "index": j, "delta": delta})
                events.append({"type": "citation-end", "index": j})
        events.append({"type": "content-end", "index": index})

    if answer.thinking is not None:
        content_block(0, "thinking", answer.thinking, False)
    if answer.tool_plan is not None:
        for piece in split_pieces(answer.tool_plan):
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for k, (cid, name, args) in enumerate(answer.tool_calls):
        call = {"id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
        start: dict[str, Any] = {"message": {"tool_calls": call}}
        events.append({"type": "tool-call-start", "index": k, "delta": start})
        for piece in split_pieces(args):
            delta: dict[str, Any] = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
            events.append({"type": "tool-call-delta", "index": k, "delta": delta})
        events.append({"type": "tool-call-end", "index": k})
    if answer.text is not None:
        content_block(answer.text_index, "text", answer.text, logprobs)
    end_delta = {"finish_reason": answer.finish_reason, "usage": usage}
    events.append({"type": "message-end", "delta": end_delta})
    frames = [event_frame(e["type"], e) for e in events]
    return StreamReply(frames, _stream_error, trailer=b"data: [DONE]\n\n")


def chat_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /v2/chat``: a ``V2ChatResponse``, or its event stream."""
    model = _model(request)
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("invalid request: messages must be a non-empty array")
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "user", "assistant", "tool"):
            raise ApiError(
                f"invalid request: invalid message role {role!r}, must be one of "
                "[system user assistant tool]"
            )
    if request.get("tool_choice") == "REQUIRED" and not _function_tools(request.get("tools")):
        raise ApiError("invalid request: tool_choice REQUIRED needs at least one tool")
    answer = _answer(request, ctl, model)
    usage = _usage(_input_tokens(request, messages), answer.output_tokens(), ctl)
    chat_id = str(uuid.uuid4())
    logprobs = request.get("logprobs") is True and answer.text is not None
    if request.get("stream") is True:
        return _stream(chat_id, answer, usage, logprobs)
    payload: dict[str, Any] = {
        "id": chat_id,
        "message": _message(answer),
        "finish_reason": answer.finish_reason,
        "usage": usage,
    }
    if logprobs:
        pieces = split_pieces(answer.text or "")
        payload["logprobs"] = [_logprob_item(piece, k) for k, piece in enumerate(pieces)]
    return JsonReply(payload)


# --------------------------------------------------------------------------------------------
# Embed
# --------------------------------------------------------------------------------------------


def _embed_items(request: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """``(seeds, texts, images)``: one seed per embedding, the texts echoed, images billed."""
    texts = request.get("texts")
    images = request.get("images")
    inputs = request.get("inputs")
    if texts is not None:
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError("invalid request: texts must be an array of strings")
        if len(texts) > MAX_EMBED_TEXTS:
            raise ApiError(
                f"invalid request: total number of texts must be at most {MAX_EMBED_TEXTS} - "
                f"received {len(texts)}"
            )
        if texts:
            return list(texts), list(texts), 0
    if images is not None:
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise ApiError("invalid request: images must be an array of data URIs")
        if images:
            return [f"image:{i}" for i in images], [], len(images)
    if isinstance(inputs, list) and inputs:
        seeds: list[str] = []
        echoed: list[str] = []
        image_count = 0
        for item in inputs:
            parts = item.get("content") if isinstance(item, dict) else None
            if not isinstance(parts, list) or not parts:
                raise ApiError("invalid request: each input must have a non-empty content array")
            text = content_text(parts)
            image_count += sum(
                1 for p in parts if isinstance(p, dict) and p.get("type") == "image_url"
            )
            seeds.append(compact(parts))
            echoed.append(text)
        return seeds, echoed, image_count
    raise ApiError("invalid request: one of texts, images or inputs must be provided")


def _pack_bits(vector: list[float]) -> list[int]:
    """Unsigned bytes, one bit per dimension (1 for a positive value), most significant first."""
    out: list[int] = []
    for start in range(0, len(vector), 8):
        byte = 0
        for v in vector[start : start + 8]:
            byte = (byte << 1) | (1 if v > 0 else 0)
        byte <<= 8 - len(vector[start : start + 8])
        out.append(byte)
    return out


def _by_type(kind: str, vector: list[float]) -> Any:
    if kind == "float":
        return vector
    peak = max((abs(v) for v in vector), default=1.0) or 1.0
    int8 = [max(-128, min(127, round(v / peak * 127))) for v in vector]
    if kind == "int8":
        return int8
    if kind == "uint8":
        return [v + 128 for v in int8]
    if kind == "ubinary":
        return _pack_bits(vector)
    if kind == "binary":
        return [v - 128 for v in _pack_bits(vector)]
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embed_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /v2/embed`` with ``embeddings_by_type``."""
    del ctl  # no control header shapes an embedding (errors are handled by the server)
    model = _model(request)
    input_type = request.get("input_type")
    if input_type is None and ("v3" in model or "v4" in model):
        raise ApiError("invalid request: valid input_type must be provided with the provided model")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise ApiError(
            f"invalid request: input_type must be one of {', '.join(INPUT_TYPES)}, "
            f"got {input_type!r}"
        )
    kinds = request.get("embedding_types")
    kinds = ["float"] if kinds is None else kinds
    if not isinstance(kinds, list) or not kinds or any(k not in EMBEDDING_TYPES for k in kinds):
        raise ApiError(
            f"invalid request: embedding_types must be a list of {', '.join(EMBEDDING_TYPES)}"
        )
    dimensions = request.get("output_dimension")
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    elif as_int(dimensions) is None or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise ApiError(
            f"invalid request: output_dimension must be an integer between 1 and {MAX_DIMENSIONS}"
        )
    seeds, texts, images = _embed_items(request)
    vectors = [embedding_vector(seed, dimensions) for seed in seeds]
    embeddings = {kind: [_by_type(kind, v) for v in vectors] for kind in dict.fromkeys(kinds)}
    billed: dict[str, Any] = {}
    if texts:
        billed["input_tokens"] = sum(count_tokens(t) for t in texts)
    if images:
        billed["images"] = images
    payload: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "texts": texts,
        "embeddings": embeddings,
        "meta": {"api_version": API_VERSION, "billed_units": billed},
        "response_type": "embeddings_by_type",
    }
    if images and not texts:
        del payload["texts"]
    return JsonReply(payload)


# --------------------------------------------------------------------------------------------
# Rerank
# --------------------------------------------------------------------------------------------


def _relevance(query_words: set[str], document: str) -> float:
    """A score in (0, 1): the share of the query's words the document contains, plus jitter."""
    words = {w.lower() for w in keywords(document)}
    overlap = len(query_words & words) / len(query_words) if query_words else 0.0
    digest = hashlib.sha256(document.encode()).digest()
    jitter = int.from_bytes(digest[:4], "big") / 2**32
    return round(0.0001 + 0.97 * overlap + 0.02 * jitter, 8)


def rerank_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /v2/rerank``: the documents' indices and relevance scores, best first."""
    del ctl
    _model(request)
    query = request.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ApiError("invalid request: query must not be empty")
    documents = request.get("documents")
    if not isinstance(documents, list) or not documents:
        raise ApiError("invalid request: documents must be a non-empty array")
    if not all(isinstance(d, str) for d in documents):
        raise ApiError("invalid request: documents must be an array of strings")
    top_n = request.get("top_n")
    if top_n is not None and (as_int(top_n) is None or top_n < 1):
        raise ApiError("invalid request: top_n must be a positive integer")
    query_words = {w.lower() for w in keywords(query)}
    scored = [(_relevance(query_words, doc), i) for i, doc in enumerate(documents)]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    if top_n is not None:
        scored = scored[:top_n]
    return JsonReply(
        {
            "id": str(uuid.uuid4()),
            "results": [{"index": i, "relevance_score": score} for score, i in scored],
            "meta": {
                "api_version": API_VERSION,
                "billed_units": {"search_units": math.ceil(len(documents) / 100)},
            },
        }
    )
