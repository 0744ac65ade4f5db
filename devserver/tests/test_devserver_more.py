"""The dev server's Cohere v2, OpenAI moderations/audio/speech and Groq protocols, driven through
the real ``cohere``, ``openai`` and ``groq`` SDKs."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import re
import struct
import wave
from typing import Any

import cohere
import groq
import httpx
import openai
import pytest
from cohere.errors import BadRequestError, TooManyRequestsError, UnauthorizedError
from llm_devserver import DevServer, RecordedRequest
from llm_devserver.embeddings import embedding_vector

COMMAND = "command-a-03-2025"
LLAMA = "llama-3.1-8b-instant"
WEATHER_PARAMS: Any = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": WEATHER_PARAMS,
    },
}
CAPITAL: Any = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER: Any = [{"role": "user", "content": "What's the weather in Paris and London?"}]


def last_request(server: DevServer, prefix: str) -> RecordedRequest:
    """The most recent recorded request whose path starts with ``prefix``."""
    return next(r for r in reversed(server.requests) if r.path.startswith(prefix))


def sse(text: str) -> list[tuple[str | None, str]]:
    """``(event, data)`` of each SSE frame of a raw body."""
    frames: list[tuple[str | None, str]] = []
    for block in text.strip().split("\n\n"):
        event = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        frames.append((event, "\n".join(data)))
    return frames


def controls(**headers: str) -> dict[str, str]:
    """``x-devserver-*`` request headers."""
    return {f"x-devserver-{k.replace('_', '-')}": v for k, v in headers.items()}


@pytest.fixture()
def co(server: DevServer) -> cohere.ClientV2:
    """A Cohere v2 client pointed at the server."""
    return cohere.ClientV2(api_key="co-key", base_url=server.url)


@pytest.fixture()
def oai(server: DevServer) -> openai.OpenAI:
    """An OpenAI client pointed at the server."""
    return openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)


@pytest.fixture()
def gq(server: DevServer) -> groq.Groq:
    """A Groq client pointed at the server (which then serves ``/openai/v1/...``)."""
    return groq.Groq(api_key="gsk_test", base_url=server.url, max_retries=0)


# --------------------------------------------------------------------------------------------
# Cohere v2
# --------------------------------------------------------------------------------------------


def test_cohere_chat(server: DevServer, co: cohere.ClientV2) -> None:
    raw = co.with_raw_response.chat(model=COMMAND, messages=CAPITAL)
    response = raw.data
    assert response.finish_reason == "COMPLETE"
    assert response.message.role == "assistant" and response.message.content is not None
    item = response.message.content[0]
    assert item.type == "text" and item.text == "The capital of France is Paris."
    assert response.message.tool_calls is None and response.message.tool_plan is None
    usage = response.usage
    assert usage is not None and usage.billed_units is not None and usage.tokens is not None
    assert usage.billed_units.input_tokens and usage.billed_units.output_tokens == 8
    assert usage.tokens.input_tokens and usage.tokens.input_tokens > usage.billed_units.input_tokens
    assert re.fullmatch(r"[0-9a-f-]{36}", response.id)
    assert re.fullmatch(r"[0-9a-f]{32}", raw.headers["x-debug-trace-id"])
    request = last_request(server, "/v2/")
    assert request.path == "/v2/chat" and request.headers["authorization"] == "Bearer co-key"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"model": COMMAND, "messages": CAPITAL, "stream": False}


def test_cohere_chat_stream(server: DevServer, co: cohere.ClientV2) -> None:
    events = list(co.chat_stream(model=COMMAND, messages=CAPITAL))
    types = [e.type for e in events]
    assert types[:2] == ["message-start", "content-start"]
    assert types[-2:] == ["content-end", "message-end"]
    assert set(types[2:-2]) == {"content-delta"}
    text = "".join(
        e.delta.message.content.text or ""
        for e in events
        if e.type == "content-delta"
        and e.delta
        and e.delta.message
        and e.delta.message.content is not None
    )
    assert text == "The capital of France is Paris."
    end = events[-1]
    assert end.type == "message-end" and end.delta is not None
    assert end.delta.finish_reason == "COMPLETE"
    assert end.delta.usage is not None and end.delta.usage.billed_units is not None
    assert end.delta.usage.billed_units.output_tokens == 8
    assert last_request(server, "/v2/").json()["stream"] is True

    # the wire: an ``event:`` line naming the data's ``type``, then ``data: [DONE]``
    body = {"model": COMMAND, "messages": CAPITAL, "stream": True}
    resp = httpx.post(server.url + "/v2/chat", json=body, headers={"authorization": "Bearer k"})
    assert resp.headers["content-type"].startswith("text/event-stream")
    frames = sse(resp.text)
    assert frames[-1] == (None, "[DONE]")
    assert all(json.loads(data)["type"] == event for event, data in frames[:-1])
    start = json.loads(frames[0][1])
    assert start["delta"]["message"] == {
        "role": "assistant",
        "content": [],
        "tool_plan": "",
        "tool_calls": [],
        "citations": [],
    }


def test_cohere_tool_call_round_trip(co: cohere.ClientV2) -> None:
    """Streamed plan and calls (arguments in pieces), then a cited answer from the results."""
    events = list(co.chat_stream(model=COMMAND, messages=WEATHER, tools=[WEATHER_TOOL]))
    plan = "".join(
        e.delta.message.tool_plan or ""
        for e in events
        if e.type == "tool-plan-delta" and e.delta and e.delta.message
    )
    assert plan == "I will look up the weather in Paris and London with the get_weather tool."
    calls: dict[int, dict[str, str]] = {}
    for e in events:
        if e.type == "tool-call-start" and e.delta and e.delta.message:
            call = e.delta.message.tool_calls
            assert call is not None and call.function is not None and e.index is not None
            assert call.function.arguments == ""
            calls[e.index] = {"id": call.id, "name": call.function.name or "", "args": ""}
        elif e.type == "tool-call-delta" and e.delta and e.delta.message:
            piece = e.delta.message.tool_calls
            assert piece is not None and piece.function is not None and e.index is not None
            calls[e.index]["args"] += piece.function.arguments or ""
    deltas = [e for e in events if e.type == "tool-call-delta"]
    assert len(deltas) > 2 * len(calls)  # arguments arrive in several pieces
    assert [json.loads(c["args"]) for c in calls.values()] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    assert all(re.fullmatch(r"get_weather_[a-z0-9]{12}", c["id"]) for c in calls.values())
    end = events[-1]
    assert end.type == "message-end" and end.delta and end.delta.finish_reason == "TOOL_CALL"
    assert not any(e.type.startswith("content") for e in events)

    messages: Any = [
        *WEATHER,
        {
            "role": "assistant",
            "tool_plan": plan,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["args"]},
                }
                for c in calls.values()
            ],
        },
        *(
            {
                "role": "tool",
                "tool_call_id": c["id"],
                "content": [
                    {"type": "document", "document": {"data": {"forecast": f"sunny in {city}"}}}
                ],
            }
            for c, city in zip(calls.values(), ["Paris", "London"], strict=True)
        ),
    ]
    answer = co.chat(model=COMMAND, messages=messages, tools=[WEATHER_TOOL])
    assert answer.finish_reason == "COMPLETE" and answer.message.content is not None
    text = answer.message.content[0].text  # type: ignore[union-attr]
    assert (
        text == 'Based on the tools: {"forecast":"sunny in Paris"}; {"forecast":"sunny in London"}'
    )
    citations = answer.message.citations or []
    assert [text[c.start or 0 : c.end] for c in citations] == [c.text for c in citations]
    sources = [c.sources[0] for c in citations if c.sources]
    assert [s.id for s in sources] == [f"{c['id']}:0" for c in calls.values()]
    assert sources[0].type == "tool" and sources[0].tool_output == {"forecast": "sunny in Paris"}


def test_cohere_async(server: DevServer) -> None:
    async def run() -> tuple[str, list[str]]:
        client = cohere.AsyncClientV2(api_key="k", base_url=server.url)
        response = await client.chat(model=COMMAND, messages=CAPITAL, max_tokens=3)
        content = response.message.content or []
        text = content[0].text if content and content[0].type == "text" else ""
        assert response.finish_reason == "MAX_TOKENS"
        types: list[str] = [
            e.type async for e in client.chat_stream(model=COMMAND, messages=CAPITAL)
        ]
        return text, types

    text, types = asyncio.run(run())
    assert text == "The capital"
    assert types[0] == "message-start" and types[-1] == "message-end"


def test_cohere_documents_thinking_and_logprobs(co: cohere.ClientV2) -> None:
    documents: Any = [
        "Paris has 2.1 million inhabitants.",
        {"id": "guide", "data": {"title": "Guide", "snippet": "The Louvre is in Paris."}},
    ]
    response = co.chat(
        model="command-a-reasoning-08-2025",
        messages=CAPITAL,
        documents=documents,
        logprobs=True,
    )
    content = response.message.content or []
    assert [c.type for c in content] == ["thinking", "text"]
    text = content[1].text  # type: ignore[union-attr]
    assert text.startswith("According to the documents: Paris has 2.1 million")
    citations = response.message.citations or []
    assert [c.content_index for c in citations] == [1, 1]
    sources = [c.sources[0] for c in citations if c.sources]
    assert [s.id for s in sources] == ["doc:0", "guide"]
    assert response.logprobs and "".join(lp.text or "" for lp in response.logprobs) == text

    events = list(co.chat_stream(model=COMMAND, messages=CAPITAL, documents=documents))
    types = [e.type for e in events]
    assert types.count("citation-start") == types.count("citation-end") == 2
    assert types.index("citation-end") < types.index("content-end")


def test_cohere_embed(server: DevServer, co: cohere.ClientV2) -> None:
    response = co.embed(
        model="embed-v4.0",
        texts=["hello", "world"],
        input_type="search_document",
        embedding_types=["float", "int8", "ubinary", "base64"],
    )
    assert response.response_type == "embeddings_by_type" and response.texts == ["hello", "world"]
    vectors = response.embeddings.float_ or []
    assert vectors == [embedding_vector("hello", 8), embedding_vector("world", 8)]
    int8 = response.embeddings.int8 or []
    assert all(-128 <= v <= 127 for row in int8 for v in row) and len(int8[0]) == 8
    assert response.embeddings.ubinary == [
        [int("".join("1" if v > 0 else "0" for v in row), 2)] for row in vectors
    ]
    encoded = (response.embeddings.base64 or [])[0]
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == vectors[0]
    assert response.meta and response.meta.billed_units
    assert response.meta.billed_units.input_tokens == 2
    assert last_request(server, "/v2/").path == "/v2/embed"

    wide = co.embed(
        model="embed-v4.0", texts=["x"], input_type="search_query", output_dimension=256
    )
    assert len((wide.embeddings.float_ or [[]])[0]) == 256
    resp = httpx.post(
        server.url + "/v2/embed",
        json={"model": "embed-v4.0", "texts": ["x"]},
        headers={"authorization": "Bearer k"},
    )
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("invalid request: valid input_type")


def test_cohere_rerank(co: cohere.ClientV2) -> None:
    documents = [
        "Berlin is the capital of Germany.",
        "Paris is the capital of France.",
        "Bananas are yellow.",
    ]
    response = co.rerank(
        model="rerank-v3.5", query="What is the capital of France?", documents=documents, top_n=2
    )
    assert [r.index for r in response.results] == [1, 0]
    scores = [r.relevance_score for r in response.results]
    assert 0 < scores[1] < scores[0] < 1
    assert response.meta and response.meta.billed_units
    assert response.meta.billed_units.search_units == 1


def test_cohere_errors_and_controls(server: DevServer, co: cohere.ClientV2) -> None:
    with pytest.raises(TooManyRequestsError) as limited:
        co.chat(
            model=COMMAND,
            messages=CAPITAL,
            request_options={"additional_headers": controls(status="429"), "max_retries": 0},
        )
    assert limited.value.status_code == 429
    assert set(limited.value.body) == {"id", "message"}
    assert "Trial key" in limited.value.body["message"]

    with pytest.raises(BadRequestError) as bad:
        co.chat(model=COMMAND, messages=[])
    assert bad.value.body["message"] == "invalid request: messages must be a non-empty array"

    with pytest.raises(UnauthorizedError) as denied:
        co.chat(
            model=COMMAND,
            messages=CAPITAL,
            request_options={"additional_headers": {"authorization": "Basic x"}},
        )
    assert denied.value.body["message"] == "no api key supplied"

    reply = co.chat(
        model=COMMAND,
        messages=CAPITAL,
        request_options={"additional_headers": controls(reply="Bonjour%20!")},
    )
    assert reply.message.content and reply.message.content[0].text == "Bonjour !"  # type: ignore[union-attr]

    broken = list(
        co.chat_stream(
            model=COMMAND,
            messages=CAPITAL,
            request_options={"additional_headers": controls(stream_error_after="3")},
        )
    )
    assert [e.type for e in broken] == [
        "message-start",
        "content-start",
        "content-delta",
        "message-end",
    ]
    end = broken[-1]
    assert end.type == "message-end" and end.delta is not None
    assert end.delta.finish_reason == "ERROR" and end.delta.error

    with pytest.raises(httpx.RemoteProtocolError):
        list(
            co.chat_stream(
                model=COMMAND,
                messages=CAPITAL,
                request_options={"additional_headers": controls(disconnect_after="2")},
            )
        )


# --------------------------------------------------------------------------------------------
# OpenAI moderations
# --------------------------------------------------------------------------------------------


def test_moderations(server: DevServer, oai: openai.OpenAI) -> None:
    result = oai.moderations.create(input=["I will kill you", "What a lovely day"])
    assert result.model == "omni-moderation-latest" and result.id.startswith("modr-")
    flagged, clean = result.results
    assert flagged.flagged and flagged.categories.violence
    assert flagged.categories.harassment_threatening and not flagged.categories.sexual
    assert flagged.category_scores.violence > 0.9 > flagged.category_scores.sexual
    scores: dict[str, Any] = clean.category_scores.to_dict()
    assert not clean.flagged and max(scores.values()) < 0.001
    assert flagged.category_applied_input_types.violence == ["text"]
    request = last_request(server, "/v1/moderations")
    assert request.json() == {"input": ["I will kill you", "What a lovely day"]}

    image: Any = [
        {"type": "text", "text": "a picture"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    multimodal = oai.moderations.create(model="omni-moderation-latest", input=image)
    assert len(multimodal.results) == 1
    applied = multimodal.results[0].category_applied_input_types
    assert applied.violence == ["text", "image"] and applied.hate == ["text"]

    legacy = oai.moderations.create(model="text-moderation-latest", input="how to kill myself")
    assert legacy.model == "text-moderation-007"
    categories = legacy.results[0].categories
    assert categories.self_harm and categories.self_harm_intent and categories.illicit is None


# --------------------------------------------------------------------------------------------
# OpenAI speech
# --------------------------------------------------------------------------------------------


MAGIC = {
    "mp3": (b"ID3", "audio/mpeg"),
    "opus": (b"OggS", "audio/opus"),
    "aac": (b"\xff\xf1", "audio/aac"),
    "flac": (b"fLaC", "audio/flac"),
    "wav": (b"RIFF", "audio/wav"),
    "pcm": (b"", "audio/pcm"),
}


@pytest.mark.parametrize("fmt", list(MAGIC))
def test_speech_formats(server: DevServer, oai: openai.OpenAI, fmt: Any) -> None:
    short = oai.audio.speech.with_raw_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hi.", response_format=fmt
    )
    long = oai.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello there! " * 10, response_format=fmt
    )
    magic, content_type = MAGIC[fmt]
    assert short.headers["content-type"] == content_type
    assert short.content.startswith(magic) and long.content.startswith(magic)
    assert len(long.content) > len(short.content)
    request = last_request(server, "/v1/audio/speech")
    assert request.headers["accept"] == "application/octet-stream"
    assert request.json()["response_format"] == fmt


def test_speech_wav_and_streaming(oai: openai.OpenAI) -> None:
    audio = oai.audio.speech.create(
        model="tts-1", voice="nova", input="x" * 100, response_format="wav"
    )
    with wave.open(io.BytesIO(audio.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() == 72000  # 30 ms per character

    with oai.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="coral", input="Streaming speech " * 20
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.headers["transfer-encoding"] == "chunked"
        chunks = list(response.iter_bytes(4096))
    assert b"".join(chunks).startswith(b"ID3") and len(chunks) > 1

    sse_audio = oai.audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input="Hello", stream_format="sse"
    )
    events = [json.loads(data) for _, data in sse(sse_audio.text)]
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]).startswith(b"ID3")
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["total_tokens"] == (
        events[-1]["usage"]["input_tokens"] + events[-1]["usage"]["output_tokens"]
    )


# --------------------------------------------------------------------------------------------
# OpenAI transcriptions and translations
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meeting(server: DevServer) -> bytes:
    """Three seconds of WAV, as the server's own speech endpoint makes it."""
    with openai.OpenAI(api_key="k", base_url=server.base_url) as client:
        speech = client.audio.speech.create(
            model="tts-1", voice="alloy", input="y" * 100, response_format="wav"
        )
    return speech.content


def test_transcription_json_and_multipart(
    server: DevServer, oai: openai.OpenAI, meeting: bytes
) -> None:
    result = oai.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("meeting.wav", meeting), language="en", prompt="A talk"
    )
    assert result.text == f"Transcribed {len(meeting)} bytes of meeting.wav."
    usage: Any = result.usage
    assert usage.type == "tokens" and usage.input_token_details.audio_tokens == 30
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    request = last_request(server, "/v1/audio/transcriptions")
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=", 1)[1].encode()
    parts = request.body.split(b"--" + boundary)[1:-1]
    heads = [p.split(b"\r\n\r\n", 1)[0].decode() for p in parts]
    names = [re.search(r'name="([^"]+)"', h).group(1) for h in heads]  # type: ignore[union-attr]
    assert names == ["model", "language", "prompt", "file"]
    assert 'filename="meeting.wav"' in heads[-1] and "Content-Type: audio/x-wav" in heads[-1]

    whisper = oai.audio.transcriptions.create(model="whisper-1", file=("meeting.wav", meeting))
    assert whisper.usage is not None and whisper.usage.type == "duration"
    assert whisper.usage.seconds == 3


def test_transcription_formats(oai: openai.OpenAI, meeting: bytes) -> None:
    upload = ("talk.mp3", meeting)
    text = oai.audio.transcriptions.create(model="whisper-1", file=upload, response_format="text")
    assert text == f"Transcribed {len(meeting)} bytes of talk.mp3.\n"
    srt = oai.audio.transcriptions.create(model="whisper-1", file=upload, response_format="srt")
    assert srt == f"1\n00:00:00,000 --> 00:00:03,000\n{text}\n"
    vtt = oai.audio.transcriptions.create(model="whisper-1", file=upload, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")

    verbose = oai.audio.transcriptions.create(
        model="whisper-1",
        file=upload,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        temperature=0.2,
    )
    assert verbose.duration == 3.0 and verbose.language == "english"
    segments = verbose.segments or []
    assert " ".join(s.text.strip() for s in segments) == verbose.text
    assert segments[0].start == 0 and segments[-1].end == 3.0
    assert segments[0].temperature == 0.2 and segments[0].tokens
    words = verbose.words or []
    assert [w.word for w in words] == verbose.text.split()
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))

    diarized = oai.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", file=upload, response_format="diarized_json"
    )
    assert diarized.segments[0].speaker == "A" and diarized.segments[0].type == (
        "transcript.text.segment"
    )


def test_transcription_stream(server: DevServer, oai: openai.OpenAI, meeting: bytes) -> None:
    stream = oai.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe",
        file=("meeting.wav", meeting),
        stream=True,
        include=["logprobs"],
    )
    events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert len(deltas) > 3 and done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done.text
    assert done.usage is not None and done.usage.output_tokens
    assert all(d.logprobs for d in deltas) and done.logprobs
    form = last_request(server, "/v1/audio/transcriptions").body
    assert b'name="stream"\r\n\r\ntrue' in form and b'name="include[]"\r\n\r\nlogprobs' in form

    broken = oai.audio.transcriptions.create(
        model="gpt-4o-transcribe",
        file=("meeting.wav", meeting),
        stream=True,
        extra_headers=controls(stream_error_after="2"),
    )
    with pytest.raises(openai.APIError, match="The server had an error"):
        list(broken)


def test_translation(oai: openai.OpenAI, meeting: bytes) -> None:
    plain = oai.audio.translations.create(model="whisper-1", file=("rede.wav", meeting))
    assert plain.text == f"Translated {len(meeting)} bytes of rede.wav into English."
    verbose = oai.audio.translations.create(
        model="whisper-1", file=("rede.wav", meeting), response_format="verbose_json"
    )
    assert verbose.language == "english" and verbose.segments and verbose.duration == 3.0
    assert (verbose.model_extra or {})["task"] == "translate"


def test_audio_async(server: DevServer, meeting: bytes) -> None:
    async def run() -> tuple[bytes, str]:
        async with openai.AsyncOpenAI(api_key="k", base_url=server.base_url) as client:
            speech = await client.audio.speech.create(
                model="gpt-4o-mini-tts", voice="echo", input="async", response_format="flac"
            )
            result = await client.audio.transcriptions.create(
                model="whisper-1", file=("a.flac", speech.content)
            )
            return speech.content, result.text

    audio, text = asyncio.run(run())
    assert audio.startswith(b"fLaC") and text == f"Transcribed {len(audio)} bytes of a.flac."


def test_audio_errors(server: DevServer, oai: openai.OpenAI, meeting: bytes) -> None:
    with pytest.raises(openai.BadRequestError, match="Unrecognized file format"):
        oai.audio.transcriptions.create(model="whisper-1", file=meeting)  # named "upload"
    with pytest.raises(openai.BadRequestError, match="not compatible") as bad:
        oai.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", meeting), response_format="verbose_json"
        )
    assert bad.value.code == "unsupported_value" and bad.value.param == "response_format"
    with pytest.raises(openai.BadRequestError, match="too short"):
        oai.audio.transcriptions.create(model="whisper-1", file=("a.wav", meeting[:44]))
    with pytest.raises(openai.BadRequestError, match="voice"):
        oai.audio.speech.create(model="tts-1", voice="nobody", input="hi")
    with pytest.raises(openai.InternalServerError) as failed:
        oai.audio.speech.create(
            model="tts-1", voice="alloy", input="hi", extra_headers=controls(status="503")
        )
    assert failed.value.code == "service_unavailable"
    with pytest.raises(openai.RateLimitError):
        oai.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", meeting), extra_headers=controls(status="429")
        )
    with pytest.raises(openai.BadRequestError, match="Missing required parameter: 'input'"):
        oai.moderations.create(input=openai.omit, model="omni-moderation-latest")  # type: ignore[arg-type]

    resp = httpx.post(server.base_url + "/audio/transcriptions", json={"model": "whisper-1"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("Invalid Content-Type header")
    cut = httpx.post(
        server.base_url + "/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "z" * 400, "response_format": "pcm"},
        headers=controls(stream_error_after="2"),
    )
    assert cut.status_code == 200 and len(cut.content) == 2 * 4096  # the audio stops short


# --------------------------------------------------------------------------------------------
# Groq
# --------------------------------------------------------------------------------------------


def test_groq_chat(server: DevServer, gq: groq.Groq) -> None:
    raw = gq.chat.completions.with_raw_response.create(model=LLAMA, messages=CAPITAL)
    completion = raw.parse()
    assert completion.choices[0].message.content == "The capital of France is Paris."
    assert completion.model == LLAMA and completion.service_tier == "on_demand"
    assert completion.x_groq is not None
    assert re.fullmatch(r"req_01[0-9a-z]{24}", completion.x_groq.id)
    assert re.fullmatch(r"chatcmpl-[0-9a-f-]{36}", completion.id)
    usage = completion.usage
    assert usage is not None and usage.queue_time and usage.prompt_time
    assert usage.completion_time and usage.total_time == pytest.approx(
        usage.prompt_time + usage.completion_time
    )
    assert raw.headers["x-groq-region"] and raw.headers["x-request-id"].startswith("req_01")
    assert "prompt_filter_results" not in (completion.model_extra or {})  # not Azure
    request = last_request(server, "/openai/v1/")
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["user-agent"].startswith("Groq/Python ")
    assert request.headers["authorization"] == "Bearer gsk_test"


def test_groq_stream(gq: groq.Groq) -> None:
    chunks = list(gq.chat.completions.create(model=LLAMA, messages=CAPITAL, stream=True))
    assert chunks[0].x_groq is not None and chunks[0].x_groq.usage is None
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)
    assert all(c.x_groq is None for c in chunks[1:-1])
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.x_groq is not None and last.x_groq.id == chunks[0].x_groq.id
    assert last.x_groq.usage is not None and last.x_groq.usage.completion_tokens == 8
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "The capital of France is Paris."

    with_usage = list(
        gq.chat.completions.create(
            model=LLAMA,
            messages=CAPITAL,
            stream=True,
            extra_body={"stream_options": {"include_usage": True}},
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.total_tokens == last.x_groq.usage.total_tokens


def test_groq_tool_call_round_trip(gq: groq.Groq) -> None:
    chunks = list(
        gq.chat.completions.create(model=LLAMA, messages=WEATHER, tools=[WEATHER_TOOL], stream=True)
    )
    call_chunks = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(call_chunks) == 1  # Groq sends the calls whole
    calls = call_chunks[0].choices[0].delta.tool_calls or []
    assert [json.loads(c.function.arguments or "") for c in calls if c.function] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    completion = gq.chat.completions.create(model=LLAMA, messages=WEATHER, tools=[WEATHER_TOOL])
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls" and message.tool_calls
    history: Any = [
        *WEATHER,
        message.model_dump(exclude_none=True),
        *(
            {"role": "tool", "tool_call_id": call.id, "content": f"sunny in {city}"}
            for call, city in zip(message.tool_calls, ["Paris", "London"], strict=True)
        ),
    ]
    answer = gq.chat.completions.create(model=LLAMA, messages=history, tools=[WEATHER_TOOL])
    assert (
        answer.choices[0].message.content == "Based on the tools: sunny in Paris; sunny in London"
    )


def test_groq_async_and_audio(server: DevServer, meeting: bytes) -> None:
    async def run() -> tuple[str | None, str, str]:
        client = groq.AsyncGroq(api_key="k", base_url=server.url)
        completion = await client.chat.completions.create(model=LLAMA, messages=CAPITAL)
        stream = await client.chat.completions.create(model=LLAMA, messages=CAPITAL, stream=True)
        pieces = [c.choices[0].delta.content or "" async for c in stream]
        agent = last_request(server, "/openai/v1/").headers["user-agent"]
        await client.close()
        return completion.choices[0].message.content, "".join(pieces), agent

    single, streamed, agent = asyncio.run(run())
    assert single == streamed == "The capital of France is Paris."
    assert agent.startswith("AsyncGroq/Python ")

    with groq.Groq(api_key="gsk_k", base_url=server.url) as client:
        result = client.audio.transcriptions.create(
            model="whisper-large-v3", file=("m.wav", meeting)
        )
    assert result.text == f"Transcribed {len(meeting)} bytes of m.wav."
    assert (result.model_extra or {})["x_groq"]["id"].startswith("req_01")


def test_groq_errors_and_routing(server: DevServer, gq: groq.Groq) -> None:
    with pytest.raises(groq.RateLimitError) as limited:
        gq.chat.completions.create(
            model=LLAMA, messages=CAPITAL, extra_headers=controls(status="429")
        )
    body: Any = limited.value.body
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert f"`{LLAMA}`" in body["error"]["message"]
    with pytest.raises(groq.APIError, match="Service Unavailable"):
        list(
            gq.chat.completions.create(
                model=LLAMA,
                messages=CAPITAL,
                stream=True,
                extra_headers=controls(stream_error_after="2"),
            )
        )
    with pytest.raises(groq.BadRequestError, match="'n'"):
        gq.chat.completions.create(model=LLAMA, messages=CAPITAL, n=2)
    with pytest.raises(groq.NotFoundError, match="Unknown request URL"):
        gq.batches.list()

    # an OpenAI client on /openai/v1 is Azure, unless its key is a Groq key
    for key, azure in (("sk-azure", True), ("gsk_groq", False)):
        with openai.OpenAI(api_key=key, base_url=server.url + "/openai/v1") as client:
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=CAPITAL)
        assert ("apim-request-id" in raw.headers) is azure
        assert ("x_groq" in (raw.parse().model_extra or {})) is not azure
