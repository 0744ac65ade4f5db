"""One merge rule for every streamed field: strings joined, objects merged recursively, indexed
lists merged by index, anything else latest. Tested on its own (with hypothesis), then through
the real openai SDK on streams a scripted loopback server sends: chat audio, the legacy
``function_call``, ``reasoning_content`` and a field no one has invented yet."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import OpenAI
from rawserver import RawServer, head
from readback import only_llm_span

from tracer import TracedClient, TracerConfig
from tracer.apis.anthropic import MessagesStream
from tracer.apis.merge import IDENTITY_KEYS, Merged

# --- the rule on its own -------------------------------------------------------------------


def merged(*deltas: dict[str, Any], initial: dict[str, Any] | None = None) -> dict[str, Any]:
    state = Merged(initial)
    for delta in deltas:
        state.add(delta)
    return state.result()


def test_strings_join_objects_merge_and_the_rest_keeps_its_latest_value() -> None:
    assert merged(
        {"role": "assistant", "content": "Hel", "n": 1, "flags": [1]},
        {"role": "assistant", "content": "lo", "n": 2, "flags": [2, 3], "extra": None},
        {"audio": {"id": "a1", "transcript": "Hi"}},
        {"audio": {"id": "a1", "transcript": " there", "expires_at": 7}},
        {"content": None},
    ) == {
        "role": "assistant",  # identifying: the first value, not "assistantassistant"
        "content": "Hello",
        "n": 2,
        "flags": [2, 3],
        "audio": {"id": "a1", "transcript": "Hi there", "expires_at": 7},
    }


def test_lists_of_indexed_items_merge_by_index() -> None:
    assert merged(
        {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}]},
        {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "[1"}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "]"}}]},
    ) == {
        "tool_calls": [
            {"id": "a", "function": {"name": "f", "arguments": "[1]"}},
            {"id": "b", "function": {"name": "g", "arguments": "{}"}},
        ]
    }


def test_tool_calls_without_an_index_continue_until_a_new_id() -> None:
    assert merged(
        {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{"}}]},
        {"tool_calls": [{"function": {"arguments": "}"}}]},
        {"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "[]"}}]},
    )["tool_calls"] == [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "function": {"name": "g", "arguments": "[]"}},
    ]


def test_an_initial_object_keeps_its_nulls() -> None:
    assert merged({"text": "b"}, initial={"type": "text", "text": "a", "citations": None}) == {
        "type": "text",
        "text": "ab",
        "citations": None,
    }


# Objects of text, nested objects and numbers, with no identifying key: every string of the
# target is cut into pieces spread over the deltas, which must merge back into the target.
_KEYS = st.text("abcdefgh_", min_size=1, max_size=6).filter(lambda k: k not in IDENTITY_KEYS)
_OBJECTS = st.recursive(
    st.dictionaries(_KEYS, st.text(max_size=12) | st.integers(), max_size=4),
    lambda children: st.dictionaries(_KEYS, children, min_size=1, max_size=3),
    max_leaves=12,
)


def _split(value: Any, cuts: list[int], parts: int) -> list[Any]:
    """``value`` as ``parts`` deltas: each string cut in ``parts`` pieces (at ``cuts``), every
    other leaf in the last delta."""
    if isinstance(value, str):
        points = sorted({0, len(value), *(c % (len(value) + 1) for c in cuts[: parts - 1])})
        pieces = [value[a:b] for a, b in itertools.pairwise(points)]
        return pieces + [""] * (parts - len(pieces))  # at most ``parts`` pieces already
    if isinstance(value, dict):
        split = {key: _split(item, cuts, parts) for key, item in value.items()}
        return [{key: deltas[i] for key, deltas in split.items()} for i in range(parts)]
    return [None] * (parts - 1) + [value]


@settings(max_examples=200, deadline=None)
@given(_OBJECTS, st.lists(st.integers(min_value=0, max_value=50), min_size=3, max_size=3))
def test_any_object_cut_into_any_deltas_merges_back(
    target: dict[str, Any], cuts: list[int]
) -> None:
    assert merged(*_split(target, cuts, 4)) == target


def test_an_unknown_anthropic_delta_type_merges_into_its_block() -> None:
    stream = MessagesStream()
    events = [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant"}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "x_block", "x": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "x_delta", "x": "ab"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "x_delta", "x": "cd"}},
        {"type": "message_stop"},
    ]
    for event in events:
        stream.add(event["type"], json.dumps(event))
    result = stream.result()
    assert result is not None and result["content"] == [{"type": "x_block", "x": "abcd"}]


# --- through the openai SDK ----------------------------------------------------------------

WAV = base64.b64encode(b"RIFF\x24\x10\x00\x00WAVEfmt " + bytes(range(256)) * 8).decode()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


def serve_chunks(raw: RawServer, deltas: list[dict[str, Any]], finish: str = "stop") -> None:
    """A chat completion stream whose choice 0 carries ``deltas``, then ``finish``."""
    chunks = [
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        for delta in deltas
    ]
    chunks.append(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
        }
    )
    body = b"".join(b"data: %s\n\n" % json.dumps(c).encode() for c in chunks) + b"data: [DONE]\n\n"
    raw.respond([head(200, headers=[("Content-Type", "text/event-stream")]), body])


def stream_chat(raw: RawServer, config: TracerConfig | None = None, **kwargs: Any) -> list[Any]:
    client = OpenAI(
        base_url=raw.url + "/v1",
        api_key="k",
        max_retries=0,
        http_client=TracedClient(config=config),
    )
    with client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, **kwargs
    ) as stream:
        return list(stream)


def message(experiment: str) -> dict[str, Any]:
    span = only_llm_span(experiment)
    assert span.attributes["stream.completed"] is True
    result: dict[str, Any] = span.outputs["choices"][0]["message"]
    return result


@pytest.mark.parametrize("capture_media", [False, True])
def test_streamed_audio_reassembles(raw: RawServer, experiment: str, capture_media: bool) -> None:
    pieces = [WAV[:400], WAV[400:1200], WAV[1200:]]
    serve_chunks(
        raw,
        [
            {"role": "assistant", "audio": {"id": "audio_1", "transcript": "Hello"}},
            {"audio": {"transcript": " wide", "data": pieces[0]}},
            {"audio": {"transcript": " world", "data": pieces[1]}},
            {"audio": {"data": pieces[2], "expires_at": 123}},
        ],
    )
    chunks = stream_chat(
        raw,
        TracerConfig(capture_media=capture_media),
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    )
    assert len(chunks) == 5  # the caller got every chunk
    audio = message(experiment)["audio"]
    assert audio["id"] == "audio_1"
    assert audio["transcript"] == "Hello wide world"
    assert audio["expires_at"] == 123
    if capture_media:  # as sent, or stored by MLflow as an attachment of the trace
        assert audio["data"] == WAV or (
            audio["data"].startswith("mlflow-attachment://")
            and audio["data"].endswith(f"size={len(base64.b64decode(WAV))}")
        ), audio["data"][:200]
    else:
        assert audio["data"] == f"[audio/wav omitted: {len(base64.b64decode(WAV))} bytes as base64]"


def test_streamed_legacy_function_call_reassembles(raw: RawServer, experiment: str) -> None:
    serve_chunks(
        raw,
        [
            {"role": "assistant", "function_call": {"name": "get_weather", "arguments": ""}},
            {"function_call": {"arguments": '{"ci'}},
            {"function_call": {"arguments": 'ty": "Pa'}},
            {"function_call": {"arguments": 'ris"}'}},
        ],
        finish="function_call",
    )
    stream_chat(raw, functions=[{"name": "get_weather", "parameters": {"type": "object"}}])
    function_call = message(experiment)["function_call"]
    assert function_call == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert json.loads(function_call["arguments"]) == {"city": "Paris"}


def test_streamed_reasoning_content_reassembles(raw: RawServer, experiment: str) -> None:
    serve_chunks(
        raw,
        [
            {"role": "assistant", "reasoning_content": "First, "},
            {"reasoning_content": "think."},
            {"content": "Paris."},
        ],
    )
    stream_chat(raw)
    result = message(experiment)
    assert result["reasoning_content"] == "First, think."
    assert result["content"] == "Paris."


def test_a_field_no_one_has_invented_yet_reassembles(raw: RawServer, experiment: str) -> None:
    serve_chunks(
        raw,
        [
            {"role": "assistant", "x_vendor": {"trace": {"steps": "look ", "depth": 1}}},
            {"x_vendor": {"trace": {"steps": "up", "depth": 2}, "cited": [{"index": 0, "t": "a"}]}},
            {"x_vendor": {"cited": [{"index": 0, "t": "b"}, {"index": 1, "t": "c"}]}},
        ],
    )
    stream_chat(raw)
    assert message(experiment)["x_vendor"] == {
        "trace": {"steps": "look up", "depth": 2},
        "cited": [{"t": "ab"}, {"t": "c"}],
    }


@pytest.mark.parametrize("capture_content", [True, False])
def test_deeply_nested_pieces_are_recorded_without_exhausting_the_stack(
    raw: RawServer, experiment: str, capture_content: bool
) -> None:
    deep = '{"a":' * 800 + '"x"' + "}" * 800  # JSON the parser takes, far deeper than payloads
    chunk = (
        '{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        f'"delta":{{"content":"Hi","x_deep":{deep}}}}}],"usage":{{"prompt_tokens":1,"x":{deep}}}}}'
    )
    raw.respond(
        [
            head(200, headers=[("Content-Type", "text/event-stream")]),
            f"data: {chunk}\n\ndata: [DONE]\n\n".encode(),
        ]
    )
    body = '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"metadata":%s}'
    with TracedClient(config=TracerConfig(capture_content=capture_content)) as client:
        response = client.post(
            raw.url + "/v1/chat/completions",
            content=(body % deep).encode(),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 200  # strict mode: no tracer error reached the call
    span = only_llm_span(experiment)
    assert span.attributes["stream.completed"] is True
    assert "metadata" not in span.attributes
    if capture_content:
        problems = span.attributes["tracer.problems"]
        assert "request parameter 'metadata' nests deeper than 128 levels; not recorded" in problems
        assert "the outputs nest deeper than 128 levels; not recorded" in problems
    else:  # the allow-list has dropped them
        assert span.outputs["usage"] == {"prompt_tokens": 1}
        assert "tracer.problems" not in span.attributes
