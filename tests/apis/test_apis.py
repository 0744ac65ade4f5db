"""The per-API adapters and the route table, without any I/O."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from tracer import TracerConfig
from tracer.apis.anthropic import MESSAGES, anthropic_usage
from tracer.apis.chat import CHAT
from tracer.apis.completions import COMPLETIONS
from tracer.apis.embeddings import EMBEDDINGS, vector_length
from tracer.apis.responses import RESPONSES, responses_usage
from tracer.config import API_NAMES
from tracer.routes import APIS, api_for_body, match


def feed(api: Any, events: list[tuple[str, Any]]) -> Any:
    stream = api.new_stream()
    for event, data in events:
        stream.add(event, data if isinstance(data, str) else json.dumps(data))
    return stream


# --- routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "api", "endpoint", "deployment"),
    [
        ("/v1/chat/completions", CHAT, None, None),
        ("/serving-endpoints/chat/completions", CHAT, None, None),
        ("/v1/completions", COMPLETIONS, None, None),
        ("/v1/embeddings", EMBEDDINGS, None, None),
        ("/v1/responses", RESPONSES, None, None),
        ("/v1/messages", MESSAGES, None, None),
        ("/openai/deployments/gpt4o-prod/chat/completions", CHAT, None, "gpt4o-prod"),
        ("/openai/deployments/emb/embeddings", EMBEDDINGS, None, "emb"),
        ("/openai/v1/responses", RESPONSES, None, None),
        ("/serving-endpoints/my-llm/invocations", None, "my-llm", None),
    ],
)
def test_route_table(path: str, api: Any, endpoint: str | None, deployment: str | None) -> None:
    route = match("POST", path)
    assert route is not None
    assert (route.api, route.endpoint, route.deployment) == (api, endpoint, deployment)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/chat/completions"), ("POST", "/v1/models"), ("POST", "/v1/responses/r1/cancel")],
)
def test_unrecognised_requests_are_not_routed(method: str, path: str) -> None:
    assert match(method, path) is None


def test_custom_routes_come_first() -> None:
    custom = {r"/gateway/v2/generate$": "chat", r"/v1/chat/completions$": "completions"}
    assert match("POST", "/gateway/v2/generate", custom).api is CHAT  # type: ignore[union-attr]
    assert match("POST", "/v1/chat/completions", custom).api is COMPLETIONS  # type: ignore[union-attr]


def test_the_configuration_knows_every_api_by_its_route_name() -> None:
    # config.py checks route names without importing the APIs: its list is the table's.
    assert tuple(APIS) == API_NAMES


def test_custom_routes_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown API"):
        TracerConfig(routes={"/x$": "nope"})
    with pytest.raises(ValueError, match="regular expression"):
        TracerConfig(routes={"(": "chat"})
    monkeypatch.setenv("TRACER_ROUTES", '{"/gw/llm$": "responses"}')
    assert TracerConfig().routes == {"/gw/llm$": "responses"}
    monkeypatch.setenv("TRACER_ROUTES", '{"/gw/llm$": "bogus"}')
    assert TracerConfig().routes == {}


def test_invocations_body_decides_the_api() -> None:
    assert api_for_body({"messages": []}) is CHAT
    assert api_for_body({"prompt": "x"}) is COMPLETIONS
    assert api_for_body({"input": ["x"]}) is EMBEDDINGS
    assert api_for_body(None) is CHAT


# --- legacy completions -----------------------------------------------------------------------


def test_completion_stream_rebuilds_every_choice() -> None:
    head = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 3,
        "model": "gpt-3.5-turbo-instruct",
    }
    lp = {
        "tokens": ["a"],
        "token_logprobs": [-0.5],
        "top_logprobs": [{"a": -0.5}],
        "text_offset": [0],
    }
    stream = feed(
        COMPLETIONS,
        [
            (
                "",
                head
                | {"choices": [{"index": 0, "text": "Hel", "logprobs": lp, "finish_reason": None}]},
            ),
            (
                "",
                head
                | {"choices": [{"index": 1, "text": "Bon", "logprobs": lp, "finish_reason": None}]},
            ),
            (
                "",
                head
                | {
                    "choices": [{"index": 0, "text": "lo", "logprobs": lp, "finish_reason": "stop"}]
                },
            ),
            (
                "",
                head
                | {
                    "choices": [
                        {"index": 1, "text": "jour", "logprobs": lp, "finish_reason": "length"}
                    ]
                },
            ),
            (
                "",
                head
                | {
                    "choices": [],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6},
                },
            ),
            ("", "[DONE]"),
        ],
    )
    assert stream.completed
    result = stream.result()
    assert [(c["index"], c["text"], c["finish_reason"]) for c in result["choices"]] == [
        (0, "Hello", "stop"),
        (1, "Bonjour", "length"),
    ]
    assert result["choices"][0]["logprobs"]["tokens"] == ["a", "a"]
    summary = COMPLETIONS.summarize(result)
    assert summary.finish_reasons == ["stop", "length"]
    assert summary.usage == {"input_tokens": 2, "output_tokens": 4, "total_tokens": 6}
    assert summary.model == "gpt-3.5-turbo-instruct"


# --- embeddings -------------------------------------------------------------------------------


def b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


RESPONSE = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": b64([0.5, -1.0, 2.0])},
        {"object": "embedding", "index": 1, "embedding": b64([1.0, 0.0, 0.25])},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}


def test_embeddings_summary_counts_vectors_without_storing_them() -> None:
    assert vector_length(b64([1.0] * 7)) == 7
    assert vector_length([0.1, 0.2]) == 2
    assert vector_length("not base64!") is None
    summary = EMBEDDINGS.summarize(RESPONSE)
    assert summary.attributes == {"embeddings.count": 2, "embeddings.dimensions": 3}
    assert summary.usage == {"input_tokens": 4, "output_tokens": 0, "total_tokens": 4}
    outputs = EMBEDDINGS.outputs(RESPONSE, TracerConfig())
    assert outputs["data"] == [
        {"object": "embedding", "index": 0, "dimensions": 3},
        {"object": "embedding", "index": 1, "dimensions": 3},
    ]


def test_embeddings_vectors_decoded_when_captured() -> None:
    outputs = EMBEDDINGS.outputs(RESPONSE, TracerConfig(capture_embeddings=True))
    assert [d["embedding"] for d in outputs["data"]] == [[0.5, -1.0, 2.0], [1.0, 0.0, 0.25]]


# --- Responses API ----------------------------------------------------------------------------

CREATED = {
    "id": "resp_1",
    "object": "response",
    "status": "in_progress",
    "model": "gpt-4o",
    "output": [],
}


def responses_events(final: bool) -> list[tuple[str, Any]]:
    message = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "",
    }
    events: list[tuple[str, Any]] = [
        ("response.created", {"type": "response.created", "response": CREATED}),
        (
            "response.output_item.added",
            {"type": "response.output_item.added", "output_index": 0, "item": message},
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "delta": "Par",
            },
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "delta": "is",
            },
        ),
        (
            "response.output_item.added",
            {"type": "response.output_item.added", "output_index": 1, "item": call},
        ),
        (
            "response.function_call_arguments.delta",
            {
                "type": "response.function_call_arguments.delta",
                "output_index": 1,
                "delta": '{"city":',
            },
        ),
        (
            "response.function_call_arguments.delta",
            {
                "type": "response.function_call_arguments.delta",
                "output_index": 1,
                "delta": '"Paris"}',
            },
        ),
    ]
    if final:
        done = CREATED | {
            "status": "completed",
            "output": ["<the final items>"],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "total_tokens": 15,
                "input_tokens_details": {"cached_tokens": 4},
                "output_tokens_details": {"reasoning_tokens": 2},
            },
        }
        events.append(("response.completed", {"type": "response.completed", "response": done}))
    return events


def test_responses_stream_takes_the_completed_response() -> None:
    stream = feed(RESPONSES, responses_events(final=True))
    assert stream.completed
    result = stream.result()
    assert result["status"] == "completed"
    assert result["output"] == ["<the final items>"]
    summary = RESPONSES.summarize(result)
    assert summary.usage == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "cache_read_input_tokens": 4,
    }
    assert summary.finish_reasons == ["completed"]


def test_responses_stream_rebuilt_when_it_ends_early() -> None:
    stream = feed(RESPONSES, responses_events(final=False))
    assert not stream.completed
    result = stream.result()
    assert result["id"] == "resp_1"
    assert result["output"][0]["content"] == [
        {"type": "output_text", "text": "Paris", "annotations": []}
    ]
    assert result["output"][1]["arguments"] == '{"city":"Paris"}'


def test_responses_error_event_and_failed_status() -> None:
    stream = feed(
        RESPONSES,
        [
            ("response.created", {"type": "response.created", "response": CREATED}),
            ("error", {"type": "error", "code": "server_error", "message": "boom", "param": None}),
        ],
    )
    assert RESPONSES.summarize(stream.result()).error == "boom"
    failed = CREATED | {
        "status": "failed",
        "error": {"code": "server_error", "message": "it broke"},
    }
    assert RESPONSES.summarize(failed).error == "it broke"
    assert responses_usage(None) is None


def test_responses_tools_are_shown_in_chat_form() -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object"},
        "strict": True,
    }
    built_in = [
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "computer_use_preview", "display_width": 1024, "display_height": 768},
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp"},
        {"type": "custom", "name": "sql", "description": "Run SQL"},
    ]
    assert RESPONSES.tools({"tools": [tool, *built_in]}) == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "web_search"}},
        {"type": "function", "function": {"name": "file_search"}},
        {"type": "function", "function": {"name": "computer_use_preview"}},
        {"type": "function", "function": {"name": "mcp"}},
        {"type": "function", "function": {"name": "sql", "description": "Run SQL"}},
    ]


# --- Anthropic Messages -----------------------------------------------------------------------


def test_anthropic_stream_rebuilds_the_message() -> None:
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 8},
    }
    stream = feed(
        MESSAGES,
        [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "Let me "},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "think."},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "sig=="},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("ping", {"type": "ping"}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": "Checking "},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": "weather."},
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 2,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {},
                    },
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 2,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 2,
                    "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 2}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 30},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ],
    )
    assert stream.completed
    message = stream.result()
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
        {"type": "text", "text": "Checking weather."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use"
    summary = MESSAGES.summarize(message)
    assert summary.usage == {
        "input_tokens": 28,
        "output_tokens": 30,
        "total_tokens": 58,
        "cache_read_input_tokens": 8,
    }
    assert summary.finish_reasons == ["tool_use"]
    assert stream.problems == []


def test_anthropic_error_event_and_usage() -> None:
    stream = feed(
        MESSAGES,
        [
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            )
        ],
    )
    assert MESSAGES.summarize(stream.result()).error == "Overloaded"
    assert anthropic_usage(
        {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 3}
    ) == {
        "input_tokens": 8,
        "output_tokens": 2,
        "total_tokens": 10,
        "cache_creation_input_tokens": 3,
    }
    assert MESSAGES.tools(
        {"tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]}
    ) == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
        }
    ]
