"""Google Gemini (the ``google-genai`` SDK's wire protocol), Developer API and Vertex AI paths.

Served methods (``POST``; ``{v}`` is ``v1``, ``v1beta``, ``v1alpha`` or ``v1beta1``):

* ``/{v}/models/{model}:generateContent`` -- text, ``functionCall`` parts, thought summaries.
* ``/{v}/models/{model}:streamGenerateContent?alt=sse`` -- the same as SSE events
  (``data: {chunk}\\r\\n\\r\\n``, no terminator); without ``alt=sse`` a streamed JSON array.
* ``/{v}/models/{model}:embedContent`` and ``:batchEmbedContents`` -- embeddings.
* ``/{v}/models/{model}:countTokens`` -- token counts.
* Vertex AI: the same under ``/{v}/projects/{p}/locations/{l}/publishers/google/models/{model}``
  (or ``/{v}/publishers/google/models/{model}`` in express mode), plus ``:predict`` for
  ``text-embedding-*`` models.

The Developer API wants an API key (``x-goog-api-key`` header or ``key=`` query parameter) or a
bearer token, else 403; Vertex AI wants a bearer token or an API key, else 401. Any value works.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote

from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    compact,
    count_tokens,
    default_answer,
    fill_arguments,
    plan_tool_args,
    truncate_keep,
)
from llm_devserver.embeddings import DEFAULT_DIMENSIONS, MAX_DIMENSIONS, embedding_vector

__all__ = [
    "METHODS",
    "STATUS_NAMES",
    "GeminiRoute",
    "check_auth",
    "gemini_error",
    "gemini_reply",
    "parse_path",
    "response_headers",
]

_PATH = re.compile(
    r"/(?P<version>v1|v1beta|v1alpha|v1beta1)/"
    r"(?:(?P<scope>projects/[^/]+/locations/[^/]+/)?publishers/(?P<publisher>[^/]+)/)?"
    r"(?:models|tunedModels)/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)"
)
METHODS = frozenset(
    {
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "embedContent",
        "batchEmbedContents",
        "predict",
    }
)
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    401: (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    ),
    403: "The caller does not have permission",
    408: "Deadline expired before operation could complete.",
    409: "The operation was aborted.",
    429: (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    ),
    500: (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting"
    ),
    502: "Bad gateway.",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_VERTEX_MESSAGES: dict[int, str] = {
    429: (
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
    ),
    500: "Internal error encountered.",
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_NO_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_MAX_CANDIDATES = 8
_MAX_BATCH = 100
_WORDS_PER_CHUNK = 3


# --------------------------------------------------------------------------------------------
# Paths, auth, errors, headers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeminiRoute:
    """A parsed Gemini request path.

    Attributes:
        version: The API version segment (``v1beta``, ``v1``, ``v1beta1``, ...).
        model: The model id from the path (``gemini-2.5-flash``).
        method: The custom method after the colon (``generateContent``, ...).
        vertex: True for Vertex AI (``.../publishers/google/models/...``) paths.
        resource: The model's resource name as the API spells it in messages.
    """

    version: str
    model: str
    method: str
    vertex: bool
    resource: str


def parse_path(path: str) -> GeminiRoute | None:
    """The route of a Gemini path (without query string), or None if it is not one."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    model = unquote(match.group("model"))
    vertex = match.group("publisher") is not None
    if vertex:
        scope = match.group("scope") or ""
        resource = f"{scope}publishers/{match.group('publisher')}/models/{model}"
    else:
        resource = f"models/{model}"
    return GeminiRoute(match.group("version"), model, match.group("method"), vertex, resource)


def check_auth(headers: dict[str, str], query: str, vertex: bool) -> None:
    """Reject a request without an API key or bearer token (403 Developer API, 401 Vertex)."""
    if headers.get("x-goog-api-key") or parse_qs(query).get("key"):
        return
    if headers.get("authorization", "").lower().startswith("bearer "):
        return
    if vertex:
        raise ApiError(_NO_CREDENTIALS, status=401)
    raise ApiError(_NO_KEY, status=403)


def gemini_error(
    status: int, message: str | None = None, *, route: GeminiRoute | None = None
) -> dict[str, Any]:
    """A Google API error body ``{"error": {"code", "message", "status"[, "details"]}}``."""
    vertex = route is not None and route.vertex
    if message is None:
        if status == 404 and route is not None:
            if vertex:
                message = (
                    f"Publisher Model `{route.resource}` was not found or your project does not "
                    "have access to it. Please ensure you are using a valid model version. For "
                    "more information, see: "
                    "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
                )
            else:
                message = (
                    f"{route.resource} is not found for API version {route.version}, or is not "
                    f"supported for {route.method}. Call ListModels to see the list of available "
                    "models and their supported methods."
                )
        elif vertex and status in _VERTEX_MESSAGES:
            message = _VERTEX_MESSAGES[status]
        else:
            message = _MESSAGES.get(status, f"Request failed ({status}).")
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if status == 429 and not vertex:
        dimensions = {"location": "global", "model": route.model if route else "unknown"}
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": dimensions,
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"},
        ]
    return {"error": error}


def stream_error(route: GeminiRoute) -> dict[str, Any]:
    """The error object sent inside a broken stream."""
    return gemini_error(500, route=route)


def response_headers(elapsed_ms: int) -> dict[str, str]:
    """The headers Google's front end adds to every answer."""
    return {
        "vary": "Origin, X-Origin, Referer",
        "server-timing": f"gfet4t7; dur={elapsed_ms}",
        "x-xss-protection": "0",
        "x-frame-options": "SAMEORIGIN",
        "x-content-type-options": "nosniff",
    }


# --------------------------------------------------------------------------------------------
# Request reading
# --------------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _get(obj: Any, name: str) -> Any:
    """``obj[name]`` in lowerCamelCase or snake_case (the API accepts both spellings)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(_snake(name))


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = _get(content, "parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _result_text(response: Any) -> str:
    """A ``functionResponse.response`` as text: a lone string value, else compact JSON."""
    if isinstance(response, dict) and len(response) == 1:
        value = next(iter(response.values()))
        if isinstance(value, str):
            return value
    if isinstance(response, str):
        return response
    return compact(response)


def _part_text(part: dict[str, Any]) -> str:
    """The text a part contributes to the prompt."""
    text = _get(part, "text")
    if isinstance(text, str):
        return text
    call = _get(part, "functionCall")
    if isinstance(call, dict):
        return f"{call.get('name', '')} {compact(call.get('args', {}))}"
    result = _get(part, "functionResponse")
    if isinstance(result, dict):
        return f"{result.get('name', '')} {_result_text(result.get('response'))}"
    return ""


def _content_text(content: Any) -> str:
    return " ".join(t for t in (_part_text(p) for p in _parts(content)) if t)


def _contents(request: dict[str, Any], what: str = "GenerateContentRequest") -> list[Any]:
    contents = _get(request, "contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(f"* {what}.contents: contents is not specified\n")
    for k, content in enumerate(contents):
        if not isinstance(content, dict):
            raise ApiError(f"Invalid value at 'contents[{k}]' (type.googleapis.com/Content)")
        role = content.get("role")
        if role not in (None, "", "user", "model", "function"):
            raise ApiError("Please use a valid role: user, model.")
    return contents


def _prompt_tokens(request: dict[str, Any], contents: list[Any]) -> int:
    total = sum(count_tokens(_part_text(p)) for c in contents for p in _parts(c))
    system = _get(request, "systemInstruction")
    if isinstance(system, dict):
        total += count_tokens(_content_text(system))
    elif isinstance(system, str):
        total += count_tokens(system)
    tools = _get(request, "tools")
    if tools:
        total += count_tokens(json.dumps(tools))
    return max(1, total)


def _lower_types(schema: Any) -> Any:
    """A Gemini ``Schema`` (``"type": "OBJECT"``) as plain JSON schema (``"object"``)."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "type" and isinstance(value, str):
                out[key] = value.lower()
            else:
                out[key] = _lower_types(value)
        return out
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _functions(request: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"name", "parameters"}`` of every function declaration in ``tools``."""
    tools = _get(request, "tools")
    funcs: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        declarations = _get(tool, "functionDeclarations")
        for decl in declarations if isinstance(declarations, list) else []:
            if not isinstance(decl, dict) or not isinstance(decl.get("name"), str):
                continue
            params = _get(decl, "parameters")
            if params is None:
                params = _get(decl, "parametersJsonSchema")
            funcs.append({"name": decl["name"], "parameters": _lower_types(params)})
    return funcs


def _thinks_by_default(model: str) -> bool:
    name = model.lower()
    return ("gemini-2.5" in name and "lite" not in name) or "gemini-3" in name


def _json_text(schema: Any, text: str) -> str:
    """A JSON answer for ``responseMimeType: application/json`` (filled from the schema)."""
    schema = _lower_types(schema)
    if isinstance(schema, dict) and schema.get("type", "object") == "object":
        args = fill_arguments(schema, text)
        if args:
            return json.dumps(args, ensure_ascii=False)
    if isinstance(schema, dict) and schema.get("type") == "array":
        return json.dumps([text], ensure_ascii=False)
    return json.dumps({"answer": text}, ensure_ascii=False)


def _signature(thought: str) -> str:
    digest = hashlib.sha256(thought.encode()).digest()
    return base64.b64encode(b"\x12\x8a\x01" + digest * 2).decode("ascii")


def _text_chunks(text: str) -> list[str]:
    """``text`` in stream chunks of a few words each (whitespace kept, concatenation exact)."""
    words = re.findall(r"\s*\S+\s*", text)
    if not words:
        return [text] if text else []
    return [
        "".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)
    ]


def _timestamp() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _response_id() -> str:
    """A ``responseId`` like Google's: 23 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(17)).decode("ascii").rstrip("=")


# --------------------------------------------------------------------------------------------
# generateContent
# --------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    index: int
    thought: str = ""
    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish: str = "STOP"
    tokens: int = 0


_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]


@dataclass
class _Generation:
    route: GeminiRoute
    candidates: list[_Candidate]
    include_thoughts: bool
    usage: dict[str, Any]
    response_id: str
    create_time: str

    def parts(self, cand: _Candidate) -> list[dict[str, Any]]:
        """Every part of a candidate's complete ``content``."""
        parts: list[dict[str, Any]] = []
        if cand.thought and self.include_thoughts:
            parts.append({"text": cand.thought, "thought": True})
        for k, (name, args) in enumerate(cand.calls):
            part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
            if k == 0 and cand.thought:
                part["thoughtSignature"] = _signature(cand.thought)
            parts.append(part)
        if cand.text:
            parts.append({"text": cand.text})
        return parts

    def candidate(
        self, cand: _Candidate, parts: list[dict[str, Any]], finish: bool
    ) -> dict[str, Any]:
        """One ``candidates[i]`` entry holding ``parts`` (and the finish reason if ``finish``)."""
        out: dict[str, Any] = {}
        if cand.finish != "SAFETY":
            out["content"] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
        if finish:
            out["finishReason"] = cand.finish
            if cand.finish == "SAFETY":
                out["safetyRatings"] = _SAFETY_RATINGS
        if cand.index or not self.route.vertex:
            out["index"] = cand.index
        return out

    def envelope(self, candidates: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
        """A ``GenerateContentResponse`` around ``candidates``."""
        body: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            body["usageMetadata"] = usage
        body["modelVersion"] = self.route.model
        if self.route.vertex:
            body["createTime"] = self.create_time
        body["responseId"] = self.response_id
        return body

    def response(self) -> dict[str, Any]:
        """The complete (non-streamed) response."""
        cands = [self.candidate(c, self.parts(c), True) for c in self.candidates]
        return self.envelope(cands, self.usage)

    def events(self, cand: _Candidate) -> list[list[dict[str, Any]]]:
        """The parts a candidate sends in each stream chunk."""
        events: list[list[dict[str, Any]]] = []
        parts = self.parts(cand)
        thought = [p for p in parts if p.get("thought") is True]
        calls = [p for p in parts if "functionCall" in p]
        if thought:
            events.append(thought)
        if calls:
            events.append(calls)
        events.extend([{"text": chunk}] for chunk in _text_chunks(cand.text or ""))
        return events or [[]]

    def chunks(self) -> list[dict[str, Any]]:
        """The stream's ``GenerateContentResponse`` chunks; full usage in the last one."""
        per_candidate = [self.events(c) for c in self.candidates]
        count = max(len(e) for e in per_candidate)
        partial = {
            k: v
            for k, v in self.usage.items()
            if k not in ("candidatesTokenCount", "candidatesTokensDetails")
        }
        partial["totalTokenCount"] = self.usage["totalTokenCount"] - self.usage.get(
            "candidatesTokenCount", 0
        )
        chunks: list[dict[str, Any]] = []
        for j in range(count):
            entries = [
                self.candidate(cand, events[j], j == len(events) - 1)
                for cand, events in zip(self.candidates, per_candidate, strict=True)
                if j < len(events)
            ]
            last = j == count - 1
            usage: Any = self.usage if last else (None if self.route.vertex else partial)
            chunks.append(self.envelope(entries, usage))
        return chunks

    def stream(self, sse: bool) -> StreamReply:
        """SSE events (``alt=sse``) or, without it, one JSON array sent piece by piece."""
        chunks = self.chunks()
        error = stream_error(self.route)
        if sse:
            frames = [f"data: {compact(c)}\r\n\r\n".encode() for c in chunks]
            return StreamReply(
                frames,
                lambda _sent: f"data: {compact(error)}\r\n\r\n".encode(),
                content_type="text/event-stream",
            )
        pretty = [json.dumps(c, indent=2, ensure_ascii=False) for c in chunks]
        frames = [(("[" if k == 0 else "\r\n,\r\n") + p).encode() for k, p in enumerate(pretty)]
        dumped = json.dumps(error, indent=2)

        def error_frame(sent: int) -> bytes:
            return (("[" if sent == 0 else "\r\n,\r\n") + dumped + "\r\n]").encode()

        return StreamReply(
            frames, error_frame, trailer=b"\r\n]", content_type="application/json; charset=UTF-8"
        )


def _usage(
    route: GeminiRoute, prompt: int, cached: int, output: int, thoughts: int
) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if output:
        usage["candidatesTokenCount"] = output
    usage["totalTokenCount"] = prompt + output + thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if cached:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if route.vertex and output:
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": output}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if route.vertex:
        usage["trafficType"] = "ON_DEMAND"
    return usage


def _generate(
    route: GeminiRoute, request: dict[str, Any], ctl: Controls, stream: str | None
) -> Reply:
    contents = _contents(request)
    last_parts = _parts(contents[-1])
    results = [
        _result_text(_get(p, "functionResponse").get("response"))
        for p in last_parts
        if isinstance(_get(p, "functionResponse"), dict)
    ]
    answering = bool(results)
    last_user = ""
    for content in reversed(contents):
        if content.get("role") in (None, "", "user"):
            texts = [t for p in _parts(content) if isinstance(t := _get(p, "text"), str) and t]
            if texts:
                last_user = " ".join(texts)
                break

    config = _get(request, "generationConfig")
    config = config if isinstance(config, dict) else {}
    n = _get(config, "candidateCount")
    n = 1 if n is None else as_int(n)
    if n is None or not 1 <= n <= _MAX_CANDIDATES:
        raise ApiError(f"Only values between 1 and {_MAX_CANDIDATES} are supported for n.")
    limit = as_int(_get(config, "maxOutputTokens"))
    stops = _get(config, "stopSequences")
    json_mode = _get(config, "responseMimeType") == "application/json"
    schema = _get(config, "responseJsonSchema")
    if schema is None:
        schema = _get(config, "responseSchema")

    funcs = _functions(request)
    calling = _get(_get(request, "toolConfig"), "functionCallingConfig")
    mode = str(_get(calling, "mode") or "AUTO").upper()
    allowed = _get(calling, "allowedFunctionNames")
    forced: str | None = None
    if mode == "ANY" and isinstance(allowed, list) and allowed and isinstance(allowed[0], str):
        funcs = [f for f in funcs if f["name"] in allowed] or funcs
        forced = allowed[0]
    use_tools = bool(funcs) and mode != "NONE" and not answering

    thinking = _get(config, "thinkingConfig")
    budget = as_int(_get(thinking, "thinkingBudget"))
    include = _get(thinking, "includeThoughts") is True
    if budget is None:
        thinks = _thinks_by_default(route.model) or include or bool(_get(thinking, "thinkingLevel"))
    else:
        thinks = budget != 0

    candidates: list[_Candidate] = []
    for i in range(n):
        cand = _Candidate(index=i)
        calls = plan_tool_args(funcs, forced, last_user) if use_tools else []
        if thinks:
            if answering:
                cand.thought = (
                    "**Summarizing the tool results**\n\nThe tools returned their results. "
                    "I should summarise them for the user."
                )
            elif calls:
                cand.thought = (
                    "**Choosing a tool**\n\nTo answer this I need to call the "
                    f"{calls[0][0]} tool first."
                )
            else:
                question = " ".join(last_user.split())[:200]
                cand.thought = (
                    f'**Answering the question**\n\nThe user asks: "{question}". '
                    "I should answer clearly and concisely."
                )
        if ctl.refusal is not None:
            cand.finish = "SAFETY"
        elif calls:
            cand.calls = calls
            cand.tokens = sum(count_tokens(f"{name} {compact(args)}") + 3 for name, args in calls)
        else:
            if ctl.reply is not None:
                text = ctl.reply
            elif answering:
                text = "Based on the tools: " + "; ".join(results)
            else:
                text = default_answer(last_user)
                if json_mode:
                    text = _json_text(schema, text)
            if i > 0:
                text = f"(choice {i}) {text}"
            for sequence in stops if isinstance(stops, list) else []:
                if isinstance(sequence, str) and sequence and sequence in text:
                    text = text[: text.index(sequence)]
            text, cut = truncate_keep(text, limit)
            if cut:
                cand.finish = "MAX_TOKENS"
            cand.text = text
            cand.tokens = count_tokens(text)
        candidates.append(cand)

    prompt = _prompt_tokens(request, contents)
    cached = max(0, ctl.cached_tokens or 0)
    prompt = max(prompt, cached)
    # a thought summary stands for a longer hidden chain of thought: bill four times its size
    thoughts = sum(count_tokens(c.thought) * 4 for c in candidates)
    output = sum(c.tokens for c in candidates)
    generation = _Generation(
        route=route,
        candidates=candidates,
        include_thoughts=include,
        usage=_usage(route, prompt, cached, output, thoughts),
        response_id=_response_id(),
        create_time=_timestamp(),
    )
    if stream is not None:
        return generation.stream(stream == "sse")
    return JsonReply(generation.response())


# --------------------------------------------------------------------------------------------
# countTokens, embeddings
# --------------------------------------------------------------------------------------------


def _count_tokens(route: GeminiRoute, request: dict[str, Any]) -> Reply:
    inner = _get(request, "generateContentRequest")
    source = inner if isinstance(inner, dict) else request
    contents = _contents(source, "CountTokensRequest")
    total = _prompt_tokens(source, contents)
    body: dict[str, Any] = {"totalTokens": total}
    if route.vertex:
        chars = sum(len("".join(_content_text(c).split())) for c in contents)
        body["totalBillableCharacters"] = chars
    body["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": total}]
    return JsonReply(body)


def _dimensions(*sources: Any) -> int:
    for source in sources:
        value = _get(source, "outputDimensionality")
        if value is None:
            continue
        dims = as_int(value)
        if dims is None or not 1 <= dims <= MAX_DIMENSIONS:
            raise ApiError(
                f"* EmbedContentRequest.output_dimensionality: must be between 1 and "
                f"{MAX_DIMENSIONS}, got {value!r}\n"
            )
        return dims
    return DEFAULT_DIMENSIONS


def _embed_text(content: Any, where: str) -> str:
    text = _content_text(content) if isinstance(content, dict) else content
    if not isinstance(text, str) or not text:
        raise ApiError(f"* {where}.content: contents is not specified\n")
    return text


def _embed(route: GeminiRoute, request: dict[str, Any]) -> Reply:
    config = _get(request, "embedContentConfig")
    text = _embed_text(_get(request, "content"), "EmbedContentRequest")
    values = embedding_vector(text, _dimensions(config, request))
    body: dict[str, Any] = {"embedding": {"values": values}}
    if route.vertex:
        tokens = count_tokens(text)
        body["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
        body["truncated"] = False
    return JsonReply(body)


def _batch_embed(route: GeminiRoute, request: dict[str, Any]) -> Reply:
    requests = _get(request, "requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    if len(requests) > _MAX_BATCH:
        raise ApiError(
            f"* BatchEmbedContentsRequest.requests: at most {_MAX_BATCH} requests can be in one "
            "batch\n"
        )
    embeddings: list[dict[str, Any]] = []
    tokens = 0
    for k, item in enumerate(requests):
        where = f"BatchEmbedContentsRequest.requests[{k}]"
        text = _embed_text(_get(item, "content"), where)
        dims = _dimensions(_get(item, "embedContentConfig"), item)
        embeddings.append({"values": embedding_vector(text, dims)})
        tokens += count_tokens(text)
    body: dict[str, Any] = {"embeddings": embeddings}
    if route.vertex:
        body["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return JsonReply(body)


def _predict(request: dict[str, Any]) -> Reply:
    instances = _get(request, "instances")
    if not isinstance(instances, list) or not instances:
        raise ApiError("instances must be a non-empty list.")
    dims = _dimensions(_get(request, "parameters"))
    predictions: list[dict[str, Any]] = []
    chars = 0
    for k, instance in enumerate(instances):
        text = _get(instance, "content")
        if not isinstance(text, str) or not text:
            raise ApiError(f"instances[{k}].content must be a non-empty string.")
        chars += len("".join(text.split()))
        predictions.append(
            {
                "embeddings": {
                    "statistics": {"truncated": False, "token_count": count_tokens(text)},
                    "values": embedding_vector(text, dims),
                }
            }
        )
    return JsonReply({"predictions": predictions, "metadata": {"billableCharacterCount": chars}})


def gemini_reply(
    route: GeminiRoute, request: dict[str, Any], ctl: Controls, *, query: str = ""
) -> Reply:
    """Answer one Gemini/Vertex AI call (``route.method`` picks what)."""
    method = route.method
    if method == "generateContent":
        return _generate(route, request, ctl, None)
    if method == "streamGenerateContent":
        alt = parse_qs(query).get("alt", [""])[0]
        return _generate(route, request, ctl, "sse" if alt == "sse" else "json")
    if method == "countTokens":
        return _count_tokens(route, request)
    if method == "embedContent":
        return _embed(route, request)
    if method == "batchEmbedContents":
        return _batch_embed(route, request)
    if method == "predict" and route.vertex:
        return _predict(request)
    raise ApiError("Method not found.", status=404)
