"""With content capture off, a span keeps only its API's allow-list: through the real openai
and anthropic SDKs, against the local server, a unique marker is sent in every request field
that can carry a string (free text, names inside objects, dict keys and values, schema
descriptions and property names, enumerated settings), and no marker may be found anywhere in
the stored traces, while the settings the allow-lists keep are still there.

Markers are never put in what is kept by design: ``model``, tool and function names, ids
(``previous_response_id``, ``conversation``, ``prompt.id``/``version``, tool-call ids, file ids).
A guard test keeps the requests in step with the SDKs: every keyword parameter of the SDK
methods is sent (or left out here with its reason).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import anthropic
import anthropic.resources.messages
import openai
import openai.resources.chat.completions
import openai.resources.completions
import openai.resources.embeddings
import openai.resources.images
import openai.resources.responses
import pytest
from llm_devserver import DevServer
from mlflow.entities import Span
from openai import OpenAI
from readback import read_traces, stored

import tracer.httpx2
from tracer import TracedClient, TracerConfig
from tracer.apis.anthropic import MESSAGES
from tracer.apis.base import ApiSpec
from tracer.apis.chat import CHAT
from tracer.apis.completions import COMPLETIONS
from tracer.apis.embeddings import EMBEDDINGS
from tracer.apis.images import IMAGES
from tracer.apis.responses import RESPONSES

SUFFIX = "q7z"
CONFIG = TracerConfig(capture_content=False)


class Marks:
    """Hands out one unique marker per request field (``MARK-<case>.<field>-q7z``)."""

    def __init__(self, case: str) -> None:
        self.case = case
        self.sent: list[str] = []

    def __call__(self, field: str) -> str:
        marker = f"MARK-{self.case}.{field}-{SUFFIX}"
        assert marker not in self.sent, f"field {field!r} marked twice"
        self.sent.append(marker)
        return marker

    def url(self, field: str) -> str:
        """An https URL that carries a marker in its path."""
        return f"https://example.com/{self(field)}.png"


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def schema(m: Marks, at: str) -> dict[str, Any]:
    """A JSON schema with markers in its title, descriptions, property name, enum, default and
    examples; the marked property is required (the local server then fills it in the tool-call
    arguments it answers with, so the response carries the marker too)."""
    prop = m(f"{at}.property-name")
    return {
        "type": "object",
        "title": m(f"{at}.title"),
        "description": m(f"{at}.description"),
        "properties": {
            prop: {
                "type": "string",
                "description": m(f"{at}.property.description"),
                "default": m(f"{at}.property.default"),
                "examples": [m(f"{at}.property.example")],
                "pattern": m(f"{at}.property.pattern"),
            },
            "unit": {"type": "string", "enum": [m(f"{at}.unit.enum")]},
        },
        "required": [prop],
        "additionalProperties": False,
    }


def user_location(m: Marks, at: str) -> dict[str, Any]:
    """An approximate user location (web search tools) with a marker in each place name."""
    return {
        "type": "approximate",
        **{f: m(f"{at}.{f}") for f in ("city", "country", "region", "timezone")},
    }


def moderation(m: Marks) -> dict[str, Any]:
    """OpenAI's moderation setting (its ``model`` is a model name, so not marked)."""
    return {
        "model": "omni-moderation-latest",
        "policy": {
            "input": {"mode": m("moderation.policy.input.mode")},
            "output": {"mode": m("moderation.policy.output.mode")},
        },
    }


def cache_breakpoint(m: Marks, at: str) -> dict[str, Any]:
    return {"mode": m(f"{at}.prompt_cache_breakpoint.mode"), "ttl": m(f"{at}.ttl")}


# --------------------------------------------------------------------------------------------
# chat.completions.create
# --------------------------------------------------------------------------------------------


def chat_request(m: Marks, stream: bool) -> dict[str, Any]:
    """Every parameter of ``chat.completions.create``, a marker in each string."""
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "name": m("messages.system.name"),
            "content": m("messages.system.content"),
        },
        {
            "role": "developer",
            "name": m("messages.developer.name"),
            "content": [
                {
                    "type": "text",
                    "text": m("messages.developer.content.text"),
                    "prompt_cache_breakpoint": cache_breakpoint(m, "messages.developer"),
                }
            ],
        },
        {
            "role": "user",
            "name": m("messages.user.name"),
            "content": [
                {"type": "text", "text": m("messages.user.content.text")},
                {
                    "type": "image_url",
                    "image_url": {
                        "url": m.url("messages.user.image_url.url"),
                        "detail": m("messages.user.image_url.detail"),
                    },
                    "prompt_cache_breakpoint": cache_breakpoint(m, "messages.user.image_url"),
                },
                {
                    "type": "input_audio",
                    "input_audio": {
                        "data": m("messages.user.input_audio.data"),
                        "format": m("messages.user.input_audio.format"),
                    },
                },
                {
                    "type": "file",
                    "file": {
                        "file_data": m("messages.user.file.file_data"),
                        "filename": m("messages.user.file.filename"),
                        "file_id": "file-abc123",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "name": m("messages.assistant.name"),
            "content": [
                {"type": "text", "text": m("messages.assistant.content.text")},
                {"type": "refusal", "refusal": m("messages.assistant.content.refusal")},
            ],
            "refusal": m("messages.assistant.refusal"),
            "audio": {"id": "audio_abc123"},
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": json.dumps(
                            {m("messages.tool_calls.arguments.key"): m("messages.arguments.value")}
                        ),
                    },
                },
                {
                    "id": "call_def456",
                    "type": "custom",
                    "custom": {"name": "run_query", "input": m("messages.tool_calls.custom.input")},
                },
            ],
            "function_call": {
                "name": "lookup",
                "arguments": m("messages.assistant.function_call.arguments"),
            },
        },
        {
            "role": "tool",
            "tool_call_id": "call_abc123",
            "content": [{"type": "text", "text": m("messages.tool.content.text")}],
        },
        {"role": "tool", "tool_call_id": "call_def456", "content": m("messages.tool.content")},
        {"role": "function", "name": "lookup", "content": m("messages.function.content")},
        {"role": "user", "content": m("messages.user.question")},
    ]
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "audio": {"format": m("audio.format"), "voice": m("audio.voice")},
        "frequency_penalty": 0.1,
        "functions": [
            {
                "name": "lookup",
                "description": m("functions.description"),
                "parameters": schema(m, "functions.parameters"),
            }
        ],
        "function_call": {"name": "lookup"} if stream else m("function_call"),
        "logit_bias": {"50256": -100},  # token ids to numbers: no string to mark
        "logprobs": True,
        "max_completion_tokens": 400,
        "max_tokens": 400,
        "metadata": {m("metadata.key"): m("metadata.value")},
        "modalities": [m("modalities")],
        "moderation": moderation(m),
        "n": 1,
        "parallel_tool_calls": True,
        "prediction": {
            "type": "content",
            "content": m("prediction.content")
            if stream
            else [{"type": "text", "text": m("prediction.content.text")}],
        },
        "presence_penalty": 0.2,
        "prompt_cache_key": m("prompt_cache_key"),
        "prompt_cache_options": {
            "mode": m("prompt_cache_options.mode"),
            "ttl": m("prompt_cache_options.ttl"),
        },
        "prompt_cache_retention": m("prompt_cache_retention"),
        "reasoning_effort": m("reasoning_effort"),
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": m("response_format.json_schema.name"),
                "description": m("response_format.json_schema.description"),
                "schema": schema(m, "response_format.json_schema.schema"),
                "strict": True,
            },
        },
        "safety_identifier": m("safety_identifier"),
        "seed": 7,
        "service_tier": m("service_tier"),
        "stop": m("stop") if stream else [m("stop.0"), m("stop.1")],
        "store": False,
        "stream": stream,
        "temperature": 0.25,
        "tool_choice": m("tool_choice")
        if stream
        else {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": m("tool_choice.allowed_tools.mode"),
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "get_weather"},
                        "note": m("tool_choice.allowed_tools.tools.note"),
                    }
                ],
            },
        },
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": m("tools.function.description"),
                    "parameters": schema(m, "tools.function.parameters"),
                    "strict": True,
                },
            },
            {
                "type": "custom",
                "custom": {
                    "name": "run_query",
                    "description": m("tools.custom.description"),
                    "format": {
                        "type": "grammar",
                        "grammar": {
                            "definition": m("tools.custom.format.grammar.definition"),
                            "syntax": m("tools.custom.format.grammar.syntax"),
                        },
                    },
                },
            },
        ],
        "top_logprobs": 2,
        "top_p": 0.9,
        "user": m("user"),
        "verbosity": m("verbosity"),
        "web_search_options": {
            "search_context_size": m("web_search_options.search_context_size"),
            "user_location": {
                "type": "approximate",
                "approximate": {
                    "city": m("web_search_options.user_location.city"),
                    "country": m("web_search_options.user_location.country"),
                    "region": m("web_search_options.user_location.region"),
                    "timezone": m("web_search_options.user_location.timezone"),
                },
            },
        },
    }
    if stream:
        request["stream_options"] = {"include_usage": True, "include_obfuscation": False}
    return request


# --------------------------------------------------------------------------------------------
# responses.create
# --------------------------------------------------------------------------------------------


def input_file(m: Marks, at: str) -> dict[str, Any]:
    return {
        "type": "input_file",
        "detail": m(f"{at}.detail"),
        "file_data": m(f"{at}.file_data"),
        "file_url": m.url(f"{at}.file_url"),
        "filename": m(f"{at}.filename"),
        "prompt_cache_breakpoint": cache_breakpoint(m, at),
    }


def responses_input(m: Marks) -> list[dict[str, Any]]:
    """One input item of each common kind, the last a user question."""
    return [
        {"role": "system", "content": m("input.system.content")},
        {
            "type": "message",
            "role": "developer",
            "content": [
                {
                    "type": "input_text",
                    "text": m("input.developer.input_text"),
                    "prompt_cache_breakpoint": cache_breakpoint(m, "input.developer"),
                }
            ],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": m("input.user.input_text")},
                {
                    "type": "input_image",
                    "detail": m("input.user.input_image.detail"),
                    "image_url": m.url("input.user.input_image.image_url"),
                },
                input_file(m, "input.user.input_file"),
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_abc123",
            "status": "completed",
            "phase": m("input.assistant.phase"),
            "content": [
                {
                    "type": "output_text",
                    "text": m("input.assistant.output_text"),
                    "annotations": [
                        {
                            "type": "url_citation",
                            "start_index": 0,
                            "end_index": 1,
                            "title": m("input.assistant.url_citation.title"),
                            "url": m.url("input.assistant.url_citation.url"),
                        },
                        {
                            "type": "file_citation",
                            "file_id": "file-abc123",
                            "filename": m("input.assistant.file_citation.filename"),
                            "index": 0,
                        },
                    ],
                    "logprobs": [
                        {
                            "token": m("input.assistant.logprobs.token"),
                            "bytes": [77],
                            "logprob": -0.1,
                            "top_logprobs": [
                                {
                                    "token": m("input.assistant.top_logprobs.token"),
                                    "bytes": [77],
                                    "logprob": -0.2,
                                }
                            ],
                        }
                    ],
                },
                {"type": "refusal", "refusal": m("input.assistant.refusal")},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_abc123",
            "summary": [{"type": "summary_text", "text": m("input.reasoning.summary")}],
            "content": [{"type": "reasoning_text", "text": m("input.reasoning.content")}],
            "encrypted_content": m("input.reasoning.encrypted_content"),
        },
        {
            "type": "function_call",
            "call_id": "call_abc123",
            "name": "get_weather",
            "arguments": json.dumps(
                {m("input.function_call.arguments.key"): m("input.function_call.arguments")}
            ),
        },
        {
            "type": "function_call_output",
            "call_id": "call_abc123",
            "output": m("input.function_call_output.output"),
        },
        {
            "type": "custom_tool_call",
            "call_id": "call_def456",
            "name": "run_query",
            "input": m("input.custom_tool_call.input"),
        },
        {
            "type": "custom_tool_call_output",
            "call_id": "call_def456",
            "output": m("input.custom_tool_call_output.output"),
        },
        {"role": "user", "content": m("input.user.question")},
    ]


def responses_tools(m: Marks) -> list[dict[str, Any]]:
    """Function, custom, namespace and built-in tools, with markers in all but their names."""
    return [
        {
            "type": "function",
            "name": "get_weather",
            "description": m("tools.function.description"),
            "parameters": schema(m, "tools.function.parameters"),
            "output_schema": schema(m, "tools.function.output_schema"),
            "strict": True,
        },
        {
            "type": "custom",
            "name": "run_query",
            "description": m("tools.custom.description"),
            "format": {
                "type": "grammar",
                "definition": m("tools.custom.format.definition"),
                "syntax": m("tools.custom.format.syntax"),
            },
        },
        {
            "type": "namespace",
            "name": "crm",
            "description": m("tools.namespace.description"),
            "tools": [
                {
                    "type": "function",
                    "name": "find_customer",
                    "description": m("tools.namespace.function.description"),
                    "parameters": schema(m, "tools.namespace.function.parameters"),
                }
            ],
        },
        {
            "type": "web_search",
            "filters": {"allowed_domains": [m("tools.web_search.allowed_domain")]},
            "search_context_size": m("tools.web_search.search_context_size"),
            "user_location": user_location(m, "tools.web_search.user_location"),
        },
        {
            "type": "mcp",
            "server_label": m("tools.mcp.server_label"),
            "server_url": m.url("tools.mcp.server_url"),
            "server_description": m("tools.mcp.server_description"),
            "authorization": m("tools.mcp.authorization"),
            "headers": {m("tools.mcp.headers.key"): m("tools.mcp.headers.value")},
            "allowed_tools": ["get_weather"],
            "require_approval": m("tools.mcp.require_approval"),
        },
        {
            "type": "file_search",
            "vector_store_ids": ["vs_abc123"],
            "filters": {
                "type": "eq",
                "key": m("tools.file_search.filters.key"),
                "value": m("tools.file_search.filters.value"),
            },
        },
        {
            "type": "tool_search",
            "description": m("tools.tool_search.description"),
            "parameters": schema(m, "tools.tool_search.parameters"),
        },
        {
            "type": "image_generation",
            "model": "gpt-image-1",
            "background": m("tools.image_generation.background"),
            "quality": m("tools.image_generation.quality"),
            "size": m("tools.image_generation.size"),
            "input_image_mask": {"image_url": m.url("tools.image_generation.mask")},
        },
        {
            "type": "code_interpreter",
            "container": {
                "type": "auto",
                "file_ids": ["file-abc123"],
                "memory_limit": m("tools.code_interpreter.memory_limit"),
            },
        },
    ]


def responses_request(m: Marks, stream: bool) -> dict[str, Any]:
    """Every parameter of ``responses.create``, a marker in each string."""
    request: dict[str, Any] = {
        "model": "gpt-4o",
        "input": responses_input(m),
        "access_programs": {"cyber": m("access_programs.cyber")},
        "background": False,
        "background_options": {
            "completion_window": m("background_options.completion_window"),
            "continuation_id": "cont_abc123",
        },
        "context_management": [{"type": m("context_management.type"), "compact_threshold": 900}],
        "conversation": {"id": "conv_abc123"} if stream else "conv_abc123",
        "image": {"context_compression": m("image.context_compression")},
        "include": [m("include")],
        "instructions": m("instructions"),
        "max_output_tokens": 2000,
        "max_tool_calls": 3,
        "metadata": {m("metadata.key"): m("metadata.value")},
        "moderation": moderation(m),
        "parallel_tool_calls": True,
        "previous_response_id": "resp_abc123",
        "prompt": {
            "id": "pmpt_abc123",
            "version": "3",
            "variables": {
                m("prompt.variables.key"): m("prompt.variables.value"),
                "detail": {"type": "input_text", "text": m("prompt.variables.input_text")},
                "photo": {
                    "type": "input_image",
                    "detail": m("prompt.variables.input_image.detail"),
                    "image_url": m.url("prompt.variables.input_image.image_url"),
                },
                "doc": input_file(m, "prompt.variables.input_file"),
            },
        },
        "prompt_cache_key": m("prompt_cache_key"),
        "prompt_cache_options": {
            "comparison_response_id": "resp_def456",
            "mode": m("prompt_cache_options.mode"),
            "prewarm": False,
            "ttl": m("prompt_cache_options.ttl"),
        },
        "prompt_cache_retention": m("prompt_cache_retention"),
        "reasoning": {
            "effort": m("reasoning.effort"),
            "summary": m("reasoning.summary"),
            "generate_summary": m("reasoning.generate_summary"),
            "context": m("reasoning.context"),
            "mode": m("reasoning.mode"),
        },
        "safety_identifier": m("safety_identifier"),
        "service_tier": m("service_tier"),
        "store": False,
        "stream": stream,
        "temperature": 0.25,
        "text": {
            "format": {
                "type": "json_schema",
                "name": m("text.format.name"),
                "description": m("text.format.description"),
                "schema": schema(m, "text.format.schema"),
                "strict": True,
            },
            "verbosity": m("text.verbosity"),
        },
        "tool_choice": m("tool_choice")
        if stream
        else {
            "type": "allowed_tools",
            "mode": m("tool_choice.mode"),
            "tools": [
                {"type": "function", "name": "get_weather", "note": m("tool_choice.tools.note")}
            ],
        },
        "tools": responses_tools(m),
        "top_logprobs": 2,
        "top_p": 0.9,
        "truncation": m("truncation"),
        "user": m("user"),
    }
    if stream:
        request["stream_options"] = {"include_obfuscation": False}
    return request


# --------------------------------------------------------------------------------------------
# completions.create, embeddings.create, images.generate
# --------------------------------------------------------------------------------------------


def completions_request(m: Marks, stream: bool) -> dict[str, Any]:
    """Every parameter of ``completions.create`` (``echo`` makes the answer repeat the
    prompt)."""
    request: dict[str, Any] = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": m("prompt") if stream else [m("prompt.0"), m("prompt.1")],
        "best_of": 1,
        "echo": True,
        "frequency_penalty": 0.1,
        "logit_bias": {"50256": -100},  # token ids to numbers: no string to mark
        "logprobs": 2,
        "max_tokens": 60,
        "n": 1,
        "presence_penalty": 0.2,
        "seed": 7,
        "stop": m("stop") if stream else [m("stop.0"), m("stop.1")],
        "stream": stream,
        "suffix": m("suffix"),
        "temperature": 0.25,
        "top_p": 0.9,
        "user": m("user"),
    }
    if stream:
        request["stream_options"] = {"include_usage": True, "include_obfuscation": False}
    return request


def embeddings_request(m: Marks, stream: bool) -> dict[str, Any]:
    """Every parameter of ``embeddings.create`` (there is no stream)."""
    del stream
    return {
        "model": "text-embedding-3-small",
        "input": [m("input.0"), m("input.1")],
        "dimensions": 8,
        # A marker is refused by the local server (400: "'MARK-...' is not one of ['float',
        # 'base64'] - 'encoding_format'"), as by the real API; see SERVER_CHECKED.
        "encoding_format": "float",
        "user": m("user"),
    }


def images_request(m: Marks, stream: bool) -> dict[str, Any]:
    """Every parameter of ``images.generate``; the local server echoes ``quality`` back as a
    setting of its answer, so the response carries a marker too."""
    return {
        "model": "gpt-image-1",
        "prompt": m("prompt"),
        "background": m("background"),
        "complexity": m("complexity"),
        "frame_count": 1,
        "frame_duration_ms": 100,
        "moderation": m("moderation"),
        "n": 1,
        "output_compression": 80,
        "output_format": "png",  # see SERVER_CHECKED
        "partial_images": 1,
        "quality": m("quality"),
        "response_format": "b64_json",  # see SERVER_CHECKED
        "safety_identifier": m("safety_identifier"),
        "size": "1024x1024",  # see SERVER_CHECKED
        "stream": stream,
        "style": m("style"),
        "svg": {"model": "gpt-5-mini", "reasoning": {"effort": m("svg.reasoning.effort")}},
        "user": m("user"),
    }


def dalle3_request(m: Marks, stream: bool) -> dict[str, Any]:
    """DALL-E 3 answers with a revised prompt (the prompt, quoted)."""
    del stream
    return {
        "model": "dall-e-3",
        "prompt": m("prompt"),
        "quality": m("quality"),
        "style": m("style"),
        "response_format": "url",
        "size": "1024x1024",
        "user": m("user"),
    }


# --------------------------------------------------------------------------------------------
# anthropic messages.create
# --------------------------------------------------------------------------------------------


def ephemeral(m: Marks, at: str) -> dict[str, Any]:
    return {"type": "ephemeral", "ttl": m(f"{at}.cache_control.ttl")}


def anthropic_request(m: Marks, stream: bool) -> dict[str, Any]:
    """Every parameter of Anthropic's ``messages.create``, a marker in each string."""
    system: Any = (
        m("system")
        if stream
        else [
            {
                "type": "text",
                "text": m("system.text"),
                "cache_control": ephemeral(m, "system"),
                "citations": [
                    {
                        "type": "char_location",
                        "cited_text": m("system.citations.cited_text"),
                        "document_index": 0,
                        "document_title": m("system.citations.document_title"),
                        "start_char_index": 0,
                        "end_char_index": 1,
                    }
                ],
            }
        ]
    )
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": m("messages.user.text")},
                {"type": "image", "source": {"type": "url", "url": m.url("messages.image.url")}},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": m("messages.image.media_type"),
                        "data": m("messages.image.data"),
                    },
                    "cache_control": ephemeral(m, "messages.image"),
                },
                {
                    "type": "document",
                    "source": {
                        "type": "text",
                        "media_type": "text/plain",
                        "data": m("messages.document.data"),
                    },
                    "title": m("messages.document.title"),
                    "context": m("messages.document.context"),
                    "citations": {"enabled": True},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": m("messages.thinking.thinking"),
                    "signature": m("messages.thinking.signature"),
                },
                {"type": "redacted_thinking", "data": m("messages.redacted_thinking.data")},
                {"type": "text", "text": m("messages.assistant.text")},
                {
                    "type": "tool_use",
                    "id": "toolu_abc123",
                    "name": "get_weather",
                    "input": {m("messages.tool_use.input.key"): m("messages.tool_use.input")},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_abc123",
                    "content": [{"type": "text", "text": m("messages.tool_result.text")}],
                    "is_error": False,
                },
                {"type": "text", "text": m("messages.after_tool_result.text")},
            ],
        },
        {"role": "assistant", "content": m("messages.assistant.content")},
        {"role": "user", "content": m("messages.user.question")},
    ]
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "messages": messages,
        "cache_control": ephemeral(m, "top"),
        "container": "container_abc123"
        if stream
        else {
            "id": "container_abc123",
            "skills": [{"type": "custom", "skill_id": "skill_abc123", "version": "latest"}],
        },
        "diagnostics": {"previous_message_id": "msg_abc123"},
        "inference_geo": m("inference_geo"),
        "metadata": {"user_id": m("metadata.user_id")},
        "output_config": {
            "effort": m("output_config.effort"),
            "format": {"type": "json_schema", "schema": schema(m, "output_config.format")},
        },
        "service_tier": m("service_tier"),
        "speed": m("speed"),
        "stop_sequences": [m("stop_sequences.0"), m("stop_sequences.1")],
        "stream": stream,
        "system": system,
        "thinking": {"type": "adaptive", "display": m("thinking.display")}
        if stream
        else {"type": "enabled", "budget_tokens": 1024, "display": m("thinking.display")},
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}
        if stream
        else {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "tools": [
            {
                "type": "custom",
                "name": "get_weather",
                "description": m("tools.description"),
                "input_schema": schema(m, "tools.input_schema"),
                "input_examples": [{m("tools.input_examples.key"): m("tools.input_examples")}],
                "cache_control": ephemeral(m, "tools"),
                "strict": True,
            },
            {
                "type": "web_search_20250305",
                "name": "web_search",
                "allowed_domains": [m("tools.web_search.allowed_domain")],
                "blocked_domains": [m("tools.web_search.blocked_domain")],
                "user_location": user_location(m, "tools.web_search.user_location"),
            },
        ],
        "user_profile_id": "uprof_abc123",  # an id, sent as a header
        "workspace_id": "wrkspc_abc123",  # an id, sent as a header
    }


# --------------------------------------------------------------------------------------------
# Calling the SDKs
# --------------------------------------------------------------------------------------------

Builder = Callable[[Marks, bool], dict[str, Any]]

#: case -> (SDK method, request builder, streamed)
CASES: dict[str, tuple[str, Builder, bool]] = {
    "chat": ("chat", chat_request, False),
    "chat-stream": ("chat", chat_request, True),
    "responses": ("responses", responses_request, False),
    "responses-stream": ("responses", responses_request, True),
    "completions": ("completions", completions_request, False),
    "completions-stream": ("completions", completions_request, True),
    "embeddings": ("embeddings", embeddings_request, False),
    "images": ("images", images_request, False),
    "images-stream": ("images", images_request, True),
    "images-dall-e-3": ("images", dalle3_request, False),
    "anthropic": ("anthropic", anthropic_request, False),
    "anthropic-stream": ("anthropic", anthropic_request, True),
}

#: The SDK methods whose every keyword parameter the requests above send.
SDK_METHODS: dict[str, Callable[..., Any]] = {
    "chat": openai.resources.chat.completions.Completions.create,
    "responses": openai.resources.responses.Responses.create,
    "completions": openai.resources.completions.Completions.create,
    "embeddings": openai.resources.embeddings.Embeddings.create,
    "images": openai.resources.images.Images.generate,
    "anthropic": anthropic.resources.messages.Messages.create,
}
#: The tracer's API of each SDK method (its ``kept_request`` is the allow-list).
ALLOW_LISTS: dict[str, ApiSpec] = {
    "chat": CHAT,
    "responses": RESPONSES,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "images": IMAGES,
    "anthropic": MESSAGES,
}
#: Request options, not API fields.
NOT_FIELDS = {"extra_headers", "extra_query", "extra_body", "timeout"}
#: Parameters deliberately not sent, with the reason (none so far).
LEFT_OUT: dict[str, dict[str, str]] = {api: {} for api in SDK_METHODS}
#: Enumerated parameters sent with a valid value rather than a marker, because the local
#: server refuses anything else (what it answers to a marker).
SERVER_CHECKED: dict[str, dict[str, str]] = {
    "embeddings": {
        "encoding_format": "400 \"'<marker>' is not one of ['float', 'base64'] - "
        "'encoding_format'\"",
    },
    "images": {
        "size": "400 \"Invalid size '<marker>'. Supported sizes are auto, 1024x1024, "
        '1536x1024, 1024x1536."',
        "response_format": "400 \"'<marker>' is not one of ['url', 'b64_json'] - "
        "'response_format'\"",
        "output_format": "400 \"The dev server only renders png, not '<marker>'.\"",
    },
}


def send(api: str, request: dict[str, Any], server: DevServer) -> Any:
    """One call through the real SDK with a capture-off traced client; a stream is read to
    the end and returned as its list of events."""
    if api == "anthropic":
        with anthropic.Anthropic(
            base_url=server.url,
            api_key="k",
            max_retries=0,
            http_client=tracer.httpx2.TracedClient(config=CONFIG),
        ) as claude:
            result: Any = claude.messages.create(**request)
            return list(result) if request.get("stream") else result
    with OpenAI(
        base_url=server.base_url,
        api_key="sk-test",
        max_retries=0,
        # openai 3 types its client as httpx2's; the httpx one works the same (duck typing).
        http_client=TracedClient(config=CONFIG),  # type: ignore[arg-type]
    ) as client:
        methods: dict[str, Callable[..., Any]] = {
            "chat": client.chat.completions.create,
            "responses": client.responses.create,
            "completions": client.completions.create,
            "embeddings": client.embeddings.create,
            "images": client.images.generate,
        }
        result = methods[api](**request)
        return list(result) if request.get("stream") else result


def leaks(dump: str, markers: list[str]) -> list[str]:
    """Each marker (or a piece of one) found in ``dump``, with the 200 characters around it."""

    def where(needles: list[str]) -> list[str]:
        found: list[str] = []
        for needle in needles:
            start = dump.find(needle)
            while start != -1:
                around = dump[max(0, start - 100) : start + len(needle) + 100]
                found.append(f"{needle} at {start}: ...{around}...")
                start = dump.find(needle, start + 1)
        return found

    # pieces of markers (cut or rewritten on the way) when no whole one is there
    return where(markers) or where(["MARK-", f"-{SUFFIX}"])


def the_span(experiment: str) -> Span:
    traces = read_traces(experiment)
    assert len(traces) == 1, len(traces)
    spans = traces[0].data.spans
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def tool_names(span: Span) -> set[str]:
    """The names in ``mlflow.chat.tools`` (MLflow's form, or the tools as sent)."""
    names: set[str] = set()
    for tool in span.attributes.get("mlflow.chat.tools") or []:
        for where in (tool, tool.get("function") or {}, tool.get("custom") or {}):
            if isinstance(where.get("name"), str):
                names.add(where["name"])
    return names


# --------------------------------------------------------------------------------------------
# What is kept
# --------------------------------------------------------------------------------------------


def check_chat(span: Span, stream: bool) -> None:
    attributes = span.attributes
    assert attributes["mlflow.llm.model"] == "gpt-4o-mini"
    assert attributes["temperature"] == 0.25
    assert attributes["top_p"] == 0.9
    assert attributes["seed"] == 7
    assert attributes["max_completion_tokens"] == 400
    assert attributes["mlflow.chat.tokenUsage"]["input_tokens"] > 0
    assert attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
    assert tool_names(span) == {"get_weather", "run_query"}
    assert span.inputs["temperature"] == 0.25
    assert span.inputs["functions"] == [{"name": "lookup"}]
    assert span.inputs["response_format"] == {"type": "json_schema"}
    if stream:
        assert span.inputs["stream_options"] == {
            "include_usage": True,
            "include_obfuscation": False,
        }
        assert span.inputs["function_call"] == {"name": "lookup"}
    else:
        assert span.inputs["tool_choice"] == {
            "type": "allowed_tools",
            "allowed_tools": {"tools": [{"type": "function", "function": {"name": "get_weather"}}]},
        }
    choice = span.outputs["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather"}
    assert attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]


def check_responses(span: Span, stream: bool) -> None:
    assert span.attributes["mlflow.llm.model"] == "gpt-4o"
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
    assert {"get_weather", "run_query", "crm"} <= tool_names(span)
    assert span.inputs["temperature"] == 0.25
    assert span.inputs["previous_response_id"] == "resp_abc123"
    assert span.inputs["prompt"] == {"id": "pmpt_abc123", "version": "3"}
    assert span.outputs["status"] == "completed"
    assert [item["type"] for item in span.outputs["output"]] == ["reasoning", "function_call"]


def check_completions(span: Span, stream: bool) -> None:
    assert span.attributes["mlflow.llm.model"] == "gpt-3.5-turbo-instruct"
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
    assert span.inputs["echo"] is True
    assert span.outputs["choices"][0]["finish_reason"] in ("stop", "length")


def check_embeddings(span: Span, stream: bool) -> None:
    assert span.attributes["mlflow.llm.model"] == "text-embedding-3-small"
    assert span.inputs == {
        "model": "text-embedding-3-small",
        "dimensions": 8,
        "encoding_format": "float",
    }
    assert [item["dimensions"] for item in span.outputs["data"]] == [8, 8]


def check_images(span: Span, stream: bool) -> None:
    assert span.inputs["model"] in ("gpt-image-1", "dall-e-3")
    assert span.inputs["size"] == "1024x1024"
    assert span.outputs["data"] == [{}]


def check_anthropic(span: Span, stream: bool) -> None:
    assert span.attributes["mlflow.llm.model"] == "claude-sonnet-4-5"
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
    assert tool_names(span) == {"get_weather", "web_search"}
    assert span.inputs["max_tokens"] == 2048
    assert span.outputs["stop_reason"] == "tool_use"
    kinds = [block["type"] for block in span.outputs["content"]]
    assert kinds == ["thinking", "text", "tool_use"]


CHECKS: dict[str, Callable[[Span, bool], None]] = {
    "chat": check_chat,
    "responses": check_responses,
    "completions": check_completions,
    "embeddings": check_embeddings,
    "images": check_images,
    "anthropic": check_anthropic,
}


# --------------------------------------------------------------------------------------------
# Type fields
# --------------------------------------------------------------------------------------------


def chat_types(m: Marks) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "tools": [{"type": m("tools.type"), "function": {"name": "get_weather"}}],
        "tool_choice": {"type": m("tool_choice.type"), "function": {"name": "get_weather"}},
        "response_format": {"type": m("response_format.type")},
    }


def responses_types(m: Marks) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "input": "What is the capital of France?",
        "tools": [{"type": m("tools.type"), "name": "get_weather"}],
        "tool_choice": {"type": m("tool_choice.type"), "name": "get_weather"},
        "text": {"format": {"type": m("text.format.type")}},
    }


def anthropic_types(m: Marks) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "tools": [{"type": m("tools.type"), "name": "get_weather", "input_schema": {}}],
        "tool_choice": {"type": m("tool_choice.type")},
        "thinking": {"type": m("thinking.type")},
    }


#: Requests with free text in the ``type`` of the objects the allow-lists keep (tools, tool
#: choices, formats): ``type`` is an enumerated field like any other.
TYPE_CASES: dict[str, Callable[[Marks], dict[str, Any]]] = {
    "chat": chat_types,
    "responses": responses_types,
    "anthropic": anthropic_types,
}


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_no_marker_reaches_the_store(server: DevServer, experiment: str, case: str) -> None:
    api, build, stream = CASES[case]
    m = Marks(case)
    request = build(m, stream)
    before = len(server.requests)
    answer = send(api, request, server)
    assert answer  # the caller still gets everything

    received = "\n".join(r.body.decode() for r in server.requests[before:])
    unsent = [marker for marker in m.sent if marker not in received]
    assert not unsent, f"the SDK did not send {unsent}"  # every marker really went out

    span = the_span(experiment)
    assert span.status.status_code == "OK", span.status
    CHECKS[api](span, stream)  # what the allow-list keeps is there
    found = leaks(stored(experiment), m.sent)
    assert not found, f"{case}: {len(found)} marker(s) stored:\n" + "\n".join(found)


@pytest.mark.parametrize("api", SDK_METHODS)
def test_requests_cover_every_sdk_parameter(api: str) -> None:
    parameters = inspect.signature(SDK_METHODS[api]).parameters.values()
    accepted = {
        p.name
        for p in parameters
        if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    sent: set[str] = set()
    for case_api, build, stream in CASES.values():
        if case_api == api:
            request = build(Marks("guard"), stream)
            sent |= set(request) | set(request.get("extra_body") or {})
    missing = accepted - NOT_FIELDS - set(LEFT_OUT[api]) - sent
    # With the SDK this was written against, nothing is missing. A parameter a newer SDK adds
    # is dropped by the allow-list until the allow-list names it, so no marker in it could be
    # stored; a parameter the allow-list keeps must be exercised here.
    kept = set(ALLOW_LISTS[api].kept_request)  # type: ignore[arg-type]
    assert not missing & kept, f"{api}: kept SDK parameters no request sends: {missing & kept}"
    stale = (set(LEFT_OUT[api]) | set(SERVER_CHECKED.get(api, {}))) - accepted
    assert not stale, f"{api}: no longer SDK parameters: {sorted(stale)}"


@pytest.mark.parametrize("api", TYPE_CASES)
def test_no_marker_in_type_fields(server: DevServer, experiment: str, api: str) -> None:
    m = Marks(f"{api}-types")
    request = TYPE_CASES[api](m)
    before = len(server.requests)
    assert send(api, request, server)
    received = "\n".join(r.body.decode() for r in server.requests[before:])
    assert all(marker in received for marker in m.sent)
    assert the_span(experiment).status.status_code == "OK"
    found = leaks(stored(experiment), m.sent)
    assert not found, f"{api}: {len(found)} marker(s) stored:\n" + "\n".join(found)
