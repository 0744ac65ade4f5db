"""Reassembling chat.completion.chunk events into the non-streaming chat.completion."""

from __future__ import annotations

import json
from typing import Any

from tracer.apis.chat import CHAT, ChatStream, openai_usage

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-x"}


def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    return json.dumps({**HEAD, "system_fingerprint": "fp_1", "choices": choices, **extra})


def feed(*events: str) -> ChatStream:
    stream = CHAT.new_stream()
    for data in events:
        stream.add("", data)
    return stream


def test_two_choices_tool_calls_logprobs_and_usage() -> None:
    lp = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}
    stream = feed(
        chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
        chunk([{"index": 1, "delta": {"role": "assistant", "content": None}}]),
        chunk([{"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [lp]}}]),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ]
                    },
                }
            ]
        ),
        chunk([{"index": 0, "delta": {"content": " there"}, "logprobs": {"content": [lp]}}]),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_b",
                                "function": {"name": "get_time", "arguments": "{}"},
                            },
                            {"index": 0, "function": {"arguments": 'ty": "Paris"}'}},
                        ]
                    },
                }
            ]
        ),
        chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        chunk([{"index": 1, "delta": {}, "finish_reason": "tool_calls"}]),
        chunk([], usage={"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}),
        "[DONE]",
    )
    assert stream.completed
    assert stream.result() == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "gpt-x",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi there", "refusal": None},
                "logprobs": {"content": [lp, lp]},
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            },
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }
    assert stream.problems == []


def test_databricks_content_items_are_joined_as_text() -> None:
    stream = feed(
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": [{"type": "text", "text": "Par"}]},
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"content": [{"type": "text", "text": "is"}]},
                    "finish_reason": "stop",
                }
            ]
        ),
        "[DONE]",
    )
    assert stream.result()["choices"][0]["message"]["content"] == "Paris"  # type: ignore[index]


def test_refusal_and_extra_delta_fields_concatenate() -> None:
    stream = feed(
        chunk([{"index": 0, "delta": {"role": "assistant", "refusal": "I can't"}}]),
        chunk([{"index": 0, "delta": {"refusal": " help.", "reasoning_content": "a"}}]),
        chunk([{"index": 0, "delta": {"reasoning_content": "b"}, "finish_reason": "stop"}]),
    )
    message = stream.result()["choices"][0]["message"]  # type: ignore[index]
    assert message["refusal"] == "I can't help."
    assert message["reasoning_content"] == "ab"
    assert message["content"] is None
    assert not stream.completed


def test_tool_calls_without_indices_follow_their_ids() -> None:
    stream = feed(
        chunk(
            [{"delta": {"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{"}}]}}]
        ),
        chunk([{"delta": {"tool_calls": [{"function": {"arguments": "}"}}]}}]),
        chunk(
            [
                {
                    "delta": {
                        "tool_calls": [{"id": "c2", "function": {"name": "g", "arguments": "[]"}}]
                    }
                }
            ]
        ),
    )
    calls = stream.result()["choices"][0]["message"]["tool_calls"]  # type: ignore[index]
    assert [(c["id"], c["function"]["arguments"]) for c in calls] == [("c1", "{}"), ("c2", "[]")]


def test_error_event_and_garbage_are_recorded() -> None:
    stream = feed(
        chunk([{"index": 0, "delta": {"content": "par"}}]),
        "not json",
        '{"error": {"message": "overloaded", "type": "server_error"}}',
    )
    result = stream.result()
    assert result is not None
    assert result["choices"][0]["message"]["content"] == "par"
    assert result["error"] == {"message": "overloaded", "type": "server_error"}
    assert CHAT.summarize(result).error == "overloaded"
    assert stream.problems == ["stream event is not JSON: 'not json'"]


def test_empty_stream_has_no_result() -> None:
    assert feed().result() is None


def test_usage_mapping_includes_cache_tokens_when_reported() -> None:
    assert openai_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
        }
    ) == {
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "cache_read_input_tokens": 64,
    }
    assert openai_usage({"prompt_tokens": 1, "completion_tokens": 2}) == {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
    }
    assert openai_usage(None) is None
    assert openai_usage({"foo": 1}) is None


def test_strip_content_keeps_ids_finish_reasons_and_tool_names_only() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    stripped = CHAT.strip_content(
        {
            "id": "x",
            "user": "secret-user",
            "choices": [
                {
                    "index": 0,
                    "message": {"content": "secret", "tool_calls": [call], "annotations": []},
                    "finish_reason": "tool_calls",
                    "logprobs": {"content": [{"token": "secret"}]},
                }
            ],
            "usage": {"prompt_tokens": 1, "prompt_tokens_details": {"note": "secret", "n": 2}},
        }
    )
    assert stripped == {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f"}}]
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "prompt_tokens_details": {"n": 2}},
    }
