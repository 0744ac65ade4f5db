"""Google Gemini (``google-genai``): ``models/{model}:generateContent``,
``:streamGenerateContent`` (``alt=sse``), ``:embedContent`` and ``:batchEmbedContents``, on
the Developer API (``generativelanguage.googleapis.com/v1beta/models/...``) and on Vertex AI
(``.../projects/{p}/locations/{l}/publishers/google/models/...``).

The model is named in the path, not in the body. A stream is a sequence of
``GenerateContentResponse`` chunks (no terminal marker): each candidate's parts are merged —
consecutive text parts of the same kind (thought or not) joined, every other part (a function
call, inline data, executable code) kept whole — and the last chunk's finish reason and usage
complete it. Token usage is read as MLflow's own Gemini integration reads it:
``promptTokenCount`` in, ``candidatesTokenCount`` out, ``totalTokenCount``,
``cachedContentTokenCount`` as cache reads.
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    add_piece,
    count_at,
    embedding_attributes,
    error_message,
    parse_event,
    renamed,
    str_or_none,
    strings_of,
    token_usage,
)
from tracer.apis.keep import COUNTS, FLAG, KIND, MESSAGE, NUMBER, TEXT, Shape, one_of
from tracer.config import TracerConfig

__all__ = [
    "GEMINI_EMBED",
    "GEMINI_GENERATE",
    "GeminiEmbed",
    "GeminiGenerate",
    "GeminiStream",
    "gemini_usage",
]

#: Google's error body: ``{"error": {"code": 400, "message": ..., "status": ...}}``.
_ERROR = {"code": NUMBER, "message": MESSAGE, "status": TEXT}
_GENERATION_CONFIG = {
    "temperature": NUMBER,
    "topP": NUMBER,
    "topK": NUMBER,
    "candidateCount": NUMBER,
    "maxOutputTokens": NUMBER,
    "seed": NUMBER,
    "presencePenalty": NUMBER,
    "frequencyPenalty": NUMBER,
    "responseLogprobs": FLAG,
    "logprobs": NUMBER,
    "responseMimeType": one_of("text/plain", "application/json", "text/x.enum"),
    "responseModalities": [one_of("TEXT", "IMAGE", "AUDIO")],
    "thinkingConfig": {
        "thinkingBudget": NUMBER,
        "thinking_budget": NUMBER,
        "includeThoughts": FLAG,
        "include_thoughts": FLAG,
        "thinkingLevel": one_of("LOW", "MEDIUM", "HIGH", "MINIMAL"),
    },
}
_TOOL_CONFIG = {
    "functionCallingConfig": {
        "mode": one_of("AUTO", "ANY", "NONE", "VALIDATED"),
        "allowedFunctionNames": [TEXT],
    }
}


#: ``generationConfig`` fields under OpenAI's names (for ``gen_ai.request.*``).
_PARAMETER_NAMES = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_output_tokens",
    "candidateCount": "n",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "stopSequences": "stop_sequences",
}


def gemini_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from a ``usageMetadata`` object (as MLflow's Gemini
    integration counts it)."""
    if not isinstance(usage, dict):
        return None
    return token_usage(
        usage.get("promptTokenCount"),
        usage.get("candidatesTokenCount"),
        usage.get("totalTokenCount"),
        usage.get("cachedContentTokenCount"),
    )


def _function_tools(request: dict[str, Any]) -> list[Any] | None:
    """Function declarations in the chat-completions form MLflow displays; other tools
    (Google Search, code execution, ...) as sent."""
    tools = request.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    converted: list[Any] = []
    for tool in tools:
        declarations = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        if not isinstance(declarations, list):
            converted.append(tool)
            continue
        for declaration in declarations:
            if isinstance(declaration, dict):
                function = {
                    k: declaration[k]
                    for k in ("name", "description", "parameters")
                    if k in declaration
                }
                for schema in ("parametersJsonSchema", "parameters_json_schema"):
                    if "parameters" not in function and schema in declaration:
                        function["parameters"] = declaration[schema]
                converted.append({"type": "function", "function": function})
    return converted or None


class GeminiGenerate(ApiSpec):
    """Gemini ``generateContent`` and ``streamGenerateContent``."""

    name = "gemini.generate_content"
    operation = "chat"
    span_type = "CHAT_MODEL"
    message_format = "gemini"
    content_keys = ("contents", "systemInstruction", "system_instruction", "cachedContent")
    #: Never contents, system instructions, function descriptions or schemas, safety settings'
    #: text, labels or cached content names.
    kept_request: Shape = {
        "generationConfig": _GENERATION_CONFIG,
        "tools": [
            {"functionDeclarations": [{"name": TEXT}], "googleSearch": {}, "codeExecution": {}}
        ],
        "toolConfig": _TOOL_CONFIG,
    }
    #: Never the candidates' parts (text, thoughts, function arguments, inline data).
    kept_response: Shape = {
        "modelVersion": TEXT,
        "responseId": TEXT,
        "createTime": TEXT,
        "usageMetadata": COUNTS,
        "error": _ERROR,
        "candidates": [
            {
                "index": NUMBER,
                "finishReason": TEXT,
                "content": {
                    "role": TEXT,
                    "parts": [{"functionCall": {"name": TEXT, "id": TEXT}, "thought": FLAG}],
                },
            }
        ],
    }

    def tools(self, request: dict[str, Any]) -> list[Any] | None:
        """Function declarations in the chat-completions form."""
        return _function_tools(request)

    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """``generationConfig`` under OpenAI's names."""
        return renamed(request.get("generationConfig"), _PARAMETER_NAMES)

    def summarize(self, response: Any) -> ResponseSummary:
        """Model version, usage, finish reasons, response id and error."""
        if not isinstance(response, dict):
            return ResponseSummary()
        reasons = strings_of(response.get("candidates"), "finishReason")
        summary = ResponseSummary(
            model=str_or_none(response.get("modelVersion")),
            usage=gemini_usage(response.get("usageMetadata")),
            reasoning_tokens=count_at(response, "usageMetadata", "thoughtsTokenCount"),
            finish_reasons=reasons,
            response_id=str_or_none(response.get("responseId")),
            error=error_message(response) if response.get("error") else None,
        )
        feedback = response.get("promptFeedback")
        if isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str):
            summary.attributes["gemini.prompt_block_reason"] = feedback["blockReason"]
            summary.error = summary.error or f"prompt blocked: {feedback['blockReason']}"
        return summary

    def new_stream(self) -> GeminiStream:
        """A fresh accumulator for one streamed generation."""
        return GeminiStream()


GEMINI_GENERATE = GeminiGenerate()


class _Candidate:
    __slots__ = ("extra", "finish_reason", "parts", "role")

    def __init__(self) -> None:
        self.role: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self.extra: dict[str, Any] = {}  # safety ratings, citations, grounding: latest

    def add(self, candidate: dict[str, Any]) -> None:
        content = candidate.get("content")
        if isinstance(content, dict):
            self.role = self.role or str_or_none(content.get("role"))
            parts = content.get("parts")
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    self._add_part(part)
        for key, value in candidate.items():
            if key == "finishReason" and isinstance(value, str):
                self.finish_reason = value
            elif key not in ("content", "index", "finishReason") and value is not None:
                self.extra[key] = value

    def _add_part(self, part: dict[str, Any]) -> None:
        text = part.get("text")
        last = self.parts[-1] if self.parts else None
        if (
            isinstance(text, str)
            and last is not None
            and "_text" in last
            and bool(last.get("thought")) == bool(part.get("thought"))
        ):
            add_piece(last["_text"], text)
            if part.get("thoughtSignature"):
                last["thoughtSignature"] = part["thoughtSignature"]
        elif isinstance(text, str):
            self.parts.append({**part, "_text": [text]})
        else:
            self.parts.append(part)

    def result(self, index: int) -> dict[str, Any]:
        parts = []
        for part in self.parts:
            if "_text" in part:
                part = {k: v for k, v in part.items() if k != "_text"} | {
                    "text": "".join(part["_text"])
                }
            parts.append(part)
        result: dict[str, Any] = {
            "content": {"role": self.role or "model", "parts": parts},
            "index": index,
        }
        if self.finish_reason is not None:
            result["finishReason"] = self.finish_reason
        result.update(self.extra)
        return result


class GeminiStream(StreamBase):
    """Accumulates ``GenerateContentResponse`` chunks into one response."""

    __slots__ = ("_candidates", "_header", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._candidates: dict[int, _Candidate] = {}
        self._header: dict[str, Any] = {}
        self._usage: Any = None

    def add(self, event: str, data: str) -> None:
        """Take one chunk."""
        chunk = parse_event(data, self._problems)
        if chunk is None:
            return
        if chunk.get("error"):
            self._error = chunk["error"]
            return
        for key in ("modelVersion", "responseId", "createTime", "promptFeedback"):
            if key not in self._header and chunk.get(key):
                self._header[key] = chunk[key]
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage = chunk["usageMetadata"]
        candidates = chunk.get("candidates")
        for position, raw in enumerate(candidates if isinstance(candidates, list) else ()):
            if isinstance(raw, dict):
                index = raw.get("index")
                index = index if isinstance(index, int) else position
                self._candidates.setdefault(index, _Candidate()).add(raw)
        if self._candidates and all(c.finish_reason is not None for c in self._candidates.values()):
            self.completed = True

    @property
    def ended(self) -> bool:
        """Only an error ends the stream early: usage may follow the finishing chunk."""
        return self._error is not None

    def result(self) -> dict[str, Any] | None:
        """The ``GenerateContentResponse`` rebuilt from the chunks seen so far."""
        if not self._candidates and not self._header and self._usage is None:
            return {"error": self._error} if self._error is not None else None
        result: dict[str, Any] = {
            "candidates": [c.result(i) for i, c in sorted(self._candidates.items())]
        }
        if self._usage is not None:
            result["usageMetadata"] = self._usage
        result.update(self._header)
        if self._error is not None:
            result["error"] = self._error
        return result


class GeminiEmbed(ApiSpec):
    """Gemini ``embedContent`` and ``batchEmbedContents``: vectors replaced by their dimension
    unless ``TRACER_CAPTURE_EMBEDDINGS``."""

    name = "gemini.embed_content"
    operation = "embeddings"
    span_type = "EMBEDDING"
    message_format = None
    content_keys = ("content", "requests")
    kept_request: Shape = {
        "taskType": KIND,
        "outputDimensionality": NUMBER,
        "requests": [{"taskType": KIND, "outputDimensionality": NUMBER, "model": TEXT}],
    }
    kept_response: Shape = {
        "embedding": {"dimensions": NUMBER},
        "embeddings": [{"dimensions": NUMBER}],
        "usageMetadata": COUNTS,
        "error": _ERROR,
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Error, ``embeddings.count`` and ``embeddings.dimensions``."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            usage=gemini_usage(response.get("usageMetadata")),
            error=error_message(response) if response.get("error") else None,
        )
        vectors = _vectors(response)
        if vectors is not None:
            summary.attributes.update(
                embedding_attributes(
                    [
                        len(v["values"]) if isinstance(v.get("values"), list) else None
                        for v in vectors
                    ]
                )
            )
        return summary

    def outputs(self, response: Any, config: TracerConfig) -> Any:
        """The response with each vector's ``values`` replaced by its ``dimensions``, unless
        embeddings (and content) are captured."""
        if isinstance(response, dict) and not (
            config.capture_embeddings and config.capture_content
        ):
            response = dict(response)
            if isinstance(response.get("embedding"), dict):
                response["embedding"] = _dimensions(response["embedding"])
            if isinstance(response.get("embeddings"), list):
                response["embeddings"] = [_dimensions(e) for e in response["embeddings"]]
        return super().outputs(response, config)


GEMINI_EMBED = GeminiEmbed()


def _vectors(response: dict[str, Any]) -> list[dict[str, Any]] | None:
    if isinstance(response.get("embedding"), dict):
        return [response["embedding"]]
    embeddings = response.get("embeddings")
    if isinstance(embeddings, list):
        return [e for e in embeddings if isinstance(e, dict)]
    return None


def _dimensions(vector: Any) -> Any:
    if not isinstance(vector, dict) or not isinstance(vector.get("values"), list):
        return vector
    return {k: v for k, v in vector.items() if k != "values"} | {
        "dimensions": len(vector["values"])
    }
