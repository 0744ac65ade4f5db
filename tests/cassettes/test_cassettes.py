"""Record and replay (issue 22): every SDK's calls are recorded once against the local server
and replayed with the server gone, giving the same objects field for field and streams chunk
for chunk, traced like live calls; cassettes hold no credential; a miss fails at once and
says why; the file survives bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import cohere
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import types
from llm_devserver import DevServer
from readback import read_spans

import tracer
import tracer.httpx2
from tracer import TracedClient, TracingTransport
from tracer.pytest_plugin import LLMSpans

KEY = "sk-test-CASSETTE-SECRET-9731"
OPENAI_MAJOR = int(openai.__version__.split(".")[0])
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def dump(value: Any) -> Any:
    """SDK objects as plain data, to compare a replay with its recording field for field."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def oai(url: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url + "/v1", api_key=KEY, http_client=TracedClient(), max_retries=0, **kwargs
    )


def record_then_replay(
    tmp_path: Path, scenario: Callable[[str], Any], spans: LLMSpans
) -> tuple[Any, Any, Path]:
    """Run ``scenario(base_url)`` against a fresh local server, recording; stop the server;
    run it again from the cassette in record mode ``none``. Returns both results."""
    path = tmp_path / "cassette.json"
    with DevServer() as server, tracer.cassette(path) as tape:
        url = server.url
        recorded = dump(scenario(url))
    assert tape.recorded > 0 and tape.replayed == 0
    live = len(spans)
    with tracer.cassette(path, mode="none") as tape:
        replayed = dump(scenario(url))  # the server is gone: only the cassette can answer
    assert tape.replayed == tape_size(path) and tape.recorded == 0
    replayed_spans = spans.spans[live:]
    assert replayed_spans and all(s.attributes["tracer.replayed"] is True for s in replayed_spans)
    assert all(s.attributes["tracer.cassette"] == str(path) for s in replayed_spans)
    assert [s.outputs for s in replayed_spans] == [s.outputs for s in spans.spans[:live]]
    text = path.read_text()
    assert KEY not in text and "SECRET" not in text
    return recorded, replayed, path


@contextlib.contextmanager
def missed(match: str | None = None) -> Iterator[list[tracer.CassetteMiss]]:
    """Expect a :class:`tracer.CassetteMiss` from an SDK call: raised as it is by openai 3.x
    and the other SDKs; openai 1.x and 2.x wrap every transport exception in
    ``APIConnectionError`` (after their retries), with the miss as its cause."""
    caught: list[tracer.CassetteMiss] = []
    with pytest.raises((tracer.CassetteMiss, openai.APIConnectionError)) as raised:
        yield caught
    miss = raised.value
    if isinstance(miss, openai.APIConnectionError):
        assert OPENAI_MAJOR < 3, "openai 3.x must not wrap a CassetteMiss"
        miss = miss.__cause__  # type: ignore[assignment]
    assert isinstance(miss, tracer.CassetteMiss), repr(miss)
    if match is not None:
        assert re.search(match, str(miss)), str(miss)
    caught.append(miss)


def tape_size(path: Path) -> int:
    return len(json.loads(path.read_text())["exchanges"])


# --- every API and SDK ------------------------------------------------------------------------


def openai_chat(url: str) -> Any:
    with oai(url) as client:
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, stream=True, n=2
        )
        return [whole, list(stream)]


def openai_other_apis(url: str) -> Any:
    with oai(url) as client:
        completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
        embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        events = list(client.responses.create(model="gpt-4o", input="Hello", stream=True))
        image = client.images.generate(model="dall-e-2", prompt="a cat", response_format="b64_json")
        speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there")
        text = client.audio.transcriptions.create(
            model="whisper-1", file=("talk.wav", speech.content), language="en"
        )
        return [completion, embeddings, events, image, speech.content, text]


def openai_async_httpx2(url: str) -> Any:
    async def run() -> Any:
        client = openai.AsyncOpenAI(
            base_url=url + "/v1",
            api_key=KEY,
            http_client=tracer.httpx2.TracedAsyncClient(),
            max_retries=0,
        )
        async with client:
            whole = await client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=QUESTION, stream=True
            )
            return [whole, [chunk async for chunk in stream]]

    return asyncio.run(run())


def anthropic_messages(url: str) -> Any:
    with anthropic.Anthropic(
        base_url=url, api_key=KEY, http_client=tracer.httpx2.TracedClient(), max_retries=0
    ) as client:
        whole = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=QUESTION)
        events = list(
            client.messages.create(
                model="claude-sonnet-4-5", max_tokens=100, messages=QUESTION, stream=True
            )
        )
        return [whole, events]


def gemini(url: str) -> Any:
    client = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(base_url=url, httpx_client=TracedClient()),
    )
    whole = client.models.generate_content(model="gemini-2.5-flash", contents="Hello")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    return [whole, chunks]


def ollama_chat(url: str) -> Any:
    client = ollama.Client(host=url, transport=TracingTransport(httpx.HTTPTransport()))
    try:
        whole = client.chat(model="llama3.2", messages=QUESTION)
        parts = list(client.chat(model="llama3.2", messages=QUESTION, stream=True))
        return [whole, parts]
    finally:
        client._client.close()


def cohere_chat(url: str) -> Any:
    client = cohere.ClientV2(api_key=KEY, base_url=url, httpx_client=TracedClient())
    whole = client.chat(model="command-a-03-2025", messages=QUESTION)
    events = list(client.chat_stream(model="command-a-03-2025", messages=QUESTION))
    return [whole, events]


def groq_and_mistral(url: str) -> Any:
    import groq
    from mistralai.client import Mistral

    gq = groq.Groq(api_key=KEY, base_url=url, http_client=TracedClient(), max_retries=0)
    whole = gq.chat.completions.create(model="llama-3.3-70b-versatile", messages=QUESTION)  # type: ignore[arg-type]
    parts = list(
        gq.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
        )
    )
    mistral = Mistral(api_key=KEY, server_url=url, client=tracer.httpx2.TracedClient())
    answer = mistral.chat.complete(model="mistral-small-latest", messages=QUESTION)  # type: ignore[arg-type]
    events = list(mistral.chat.stream(model="mistral-small-latest", messages=QUESTION))  # type: ignore[arg-type]
    return [whole, parts, answer, [event.data for event in events]]


def tracing_off(url: str) -> Any:
    """A cassette does not need tracing: with it off, calls still replay (untraced)."""
    config = tracer.TracerConfig(enabled=False)
    client = openai.OpenAI(
        base_url=url + "/v1", api_key=KEY, http_client=TracedClient(config=config), max_retries=0
    )
    oai(url).embeddings.create(model="text-embedding-3-small", input="traced")
    return [
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION),
        list(client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)),
    ]


def compressed(url: str) -> Any:
    with oai(url) as client:
        gzipped = client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, extra_headers={"x-devserver-encoding": "gzip"}
        )
        brotli = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            stream=True,
            extra_headers={"x-devserver-encoding": "br"},
        )
        return [gzipped, list(brotli)]


@pytest.mark.parametrize(
    "scenario",
    [
        openai_chat,
        openai_other_apis,
        openai_async_httpx2,
        anthropic_messages,
        gemini,
        ollama_chat,
        cohere_chat,
        groq_and_mistral,
        tracing_off,
        compressed,
    ],
)
def test_recorded_once_then_replayed_with_the_server_gone(
    tmp_path: Path, llm_spans: LLMSpans, scenario: Callable[[str], Any]
) -> None:
    recorded, replayed, _ = record_then_replay(tmp_path, scenario, llm_spans)
    assert replayed == recorded


def test_a_stream_replays_chunk_for_chunk_as_the_sdk_read_it(
    tmp_path: Path, llm_spans: LLMSpans
) -> None:
    def raw(url: str) -> Any:
        with TracedClient() as http:
            body = {"model": "gpt-4o-mini", "messages": QUESTION, "stream": True}
            headers = {"authorization": f"Bearer {KEY}", "x-devserver-encoding": "gzip"}
            with http.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
                return [r.status_code, r.headers["content-type"], list(r.iter_bytes())]

    recorded, replayed, path = record_then_replay(tmp_path, raw, llm_spans)
    assert replayed == recorded and len(recorded[2]) > 3  # the same pieces, in order
    response = json.loads(path.read_text())["exchanges"][0]["response"]
    assert [c.encode() for c in response["chunks"]] == recorded[2]  # kept decoded, readable
    assert response["headers"]["content-encoding"] == "gzip" and response["decoded"] == ["gzip"]
    assert len(response["chunk_ms"]) == len(response["chunks"])


def test_a_stream_that_broke_off_breaks_off_again(tmp_path: Path, llm_spans: LLMSpans) -> None:
    def broken(url: str) -> Any:
        got: list[Any] = []
        with pytest.raises(Exception) as caught:  # the library's own, both times
            for chunk in oai(url).chat.completions.create(
                model="gpt-4o-mini",
                messages=QUESTION,
                stream=True,
                extra_headers={"x-devserver-disconnect-after": "3"},
            ):
                got.append(chunk)
        return [got, type(caught.value).__module__, type(caught.value).__name__]

    recorded, replayed, path = record_then_replay(tmp_path, broken, llm_spans)
    assert replayed == recorded and len(recorded[0]) == 3
    assert "Error" in recorded[2]
    assert json.loads(path.read_text())["exchanges"][0]["response"]["error"]
    assert llm_spans.spans[-1].status == "ERROR"


def test_replayed_calls_are_traced_into_mlflow(tmp_path: Path, experiment: str) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        url = server.url
        openai_chat(url)
    with tracer.cassette(path, mode="none"):
        replayed = openai_chat(url)
    spans = [s for s in read_spans(experiment) if s.get_attribute("tracer.replayed") is not None]
    assert [s.get_attribute("tracer.replayed") for s in spans] == [False, False, True, True]
    last = spans[-1]
    assert last.get_attribute("stream.completed") is True
    assert last.outputs["choices"][1]["message"]["content"] == "".join(
        c.choices[0].delta.content or ""
        for c in replayed[1]
        if c.choices and c.choices[0].index == 1
    )


# --- what is never written ---------------------------------------------------------------


def test_no_credential_reaches_the_cassette(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        with TracedClient() as http:
            http.post(
                f"http://user:{KEY}@127.0.0.1:{server.port}/v1/chat/completions?api_key={KEY}",
                json={
                    "model": "gpt-4o-mini",
                    "messages": QUESTION,
                    "tools": [{"type": "mcp", "server_url": "https://x", "authorization": KEY}],
                },
                headers={"api-key": KEY, "x-api-key": KEY, "cookie": f"session={KEY}"},
            ).read()
        gemini(server.url)  # the key in x-goog-api-key
    text = path.read_text()
    assert KEY not in text and "user:" not in text
    request = json.loads(text)["exchanges"][0]["request"]
    assert request["url"].endswith("api_key=REDACTED")
    assert request["json"]["tools"][0]["authorization"] == "REDACTED"


def test_the_redact_hook_rewrites_what_is_written_and_matched(tmp_path: Path) -> None:
    def redact(value: Any, field: str) -> Any:
        if field == "inputs" and isinstance(value, dict):
            return {**value, "user": "someone"}
        return value

    config = tracer.TracerConfig(redact=redact)
    path = tmp_path / "c.json"

    def call(url: str, user: str) -> Any:
        client = openai.OpenAI(
            base_url=url + "/v1", api_key=KEY, http_client=TracedClient(config=config)
        )
        return client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, user=user)

    with DevServer() as server, tracer.cassette(path):
        url = server.url
        first = call(url, "alice@example.com")
    assert "alice" not in path.read_text()
    with tracer.cassette(path, mode="none"):
        assert call(url, "bob@example.com") == first  # matched on the redacted body


# --- matching and misses ---------------------------------------------------------------------


def test_a_miss_fails_at_once_naming_the_request_and_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        url = server.url
        oai(url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, http_client=TracedClient())
    asked = [{"role": "user", "content": "What is the capital of Spain?"}]
    with tracer.cassette(path, mode="none"), missed() as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=asked)  # retries allowed
    message = str(caught[0])
    assert str(path) in message and "'none'" in message
    assert "POST /v1/chat/completions" in message and "capital of Spain" in message
    assert "closest recorded (exchange 1)" in message
    assert 'body.messages[0].content: recorded "What is the capital of France?"' in message


def test_once_replays_an_existing_cassette_and_refuses_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server:
        with tracer.cassette(path) as tape:  # no file yet: records
            first = oai(server.url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        assert tape.recorded == 1
        with tracer.cassette(path) as tape:  # the file exists: replays, even with the server up
            again = oai(server.url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            with missed("record mode 'once'"):
                oai(server.url).embeddings.create(model="text-embedding-3-small", input="x")
        assert again == first and tape.replayed == 1 and tape.recorded == 0


def test_new_episodes_appends_and_all_replaces(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server:
        client = oai(server.url)
        with tracer.cassette(path, mode="once"):
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        with tracer.cassette(path, mode="new_episodes") as tape:
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            client.embeddings.create(model="text-embedding-3-small", input="x")
        assert (tape.replayed, tape.recorded, tape_size(path)) == (1, 1, 2)
        before = {e["id"] for e in json.loads(path.read_text())["exchanges"]}
        with tracer.cassette(path, mode="all") as tape:
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        after = {e["id"] for e in json.loads(path.read_text())["exchanges"]}
        assert tape.replayed == 0 and tape_size(path) == 1 and not before & after


def test_identical_requests_replay_in_the_order_recorded(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        url = server.url
        recorded = [
            oai(url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            for _ in range(3)
        ]
    assert len({r.id for r in recorded}) == 3
    with tracer.cassette(path, mode="none"):
        replayed = [
            oai(url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            for _ in range(3)
        ]
        assert [r.id for r in replayed] == [r.id for r in recorded]
        with missed("each was replayed already"):
            oai(url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)


def test_retries_replay_as_they_happened(tmp_path: Path) -> None:
    path = tmp_path / "c.json"

    def call(url: str) -> Any:
        client = openai.OpenAI(
            base_url=url + "/v1", api_key=KEY, http_client=TracedClient(), max_retries=2
        )
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            extra_headers={"x-devserver-fail-attempts": "1", "x-devserver-status": "429"},
        )

    with DevServer() as server, tracer.cassette(path):
        url = server.url
        first = call(url)
    statuses = [e["response"]["status"] for e in json.loads(path.read_text())["exchanges"]]
    assert statuses == [429, 200]
    with tracer.cassette(path, mode="none"):
        again = call(url)
    assert again.retries_taken == first.retries_taken == 1
    assert again.parse() == first.parse()


def test_fields_that_change_from_run_to_run_can_be_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.json"

    def ask(url: str, when: str, user: str) -> Any:
        question = [{"role": "user", "content": f"It is {when}. What day is it?"}]
        return oai(url).chat.completions.create(model="gpt-4o-mini", messages=question, user=user)

    with DevServer() as server, tracer.cassette(path):
        url = server.url
        first = ask(url, "2026-12-08T02:00:00Z", "u-1")
    options = {"ignore_fields": ["user"], "ignore_patterns": [r"\d{4}-\d\d-\d\dT[\d:]+Z"]}
    with tracer.cassette(path, mode="none", **options):
        assert ask(url, "2027-01-01T10:30:00Z", "u-2") == first
    with tracer.cassette(path, mode="none"), missed() as caught:
        ask(url, "2027-01-01T10:30:00Z", "u-2")
    assert 'body.user: recorded "u-1", sent "u-2"' in str(caught[0])


def test_the_port_of_a_local_server_can_be_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        first = oai(server.url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    with DevServer() as other, tracer.cassette(path, mode="none", ignore_fields=["url.port"]):
        assert (
            oai(other.url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION) == first
        )
        assert other.requests == []


def test_an_upload_is_matched_by_its_fields_and_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    audio = b"RIFF" + bytes(range(256)) * 40

    def transcribe(url: str, data: bytes) -> Any:
        return oai(url).audio.transcriptions.create(model="whisper-1", file=("a.wav", data))

    with DevServer() as server, tracer.cassette(path):
        url = server.url
        first = transcribe(url, audio)
    form = json.loads(path.read_text())["exchanges"][0]["request"]["form"]
    assert form["model"] == "whisper-1" and form["file"]["size"] == len(audio)
    assert len(form["file"]["sha256"]) == 64
    with tracer.cassette(path, mode="none"):
        assert transcribe(url, audio) == first
        with missed("sha256"):
            transcribe(url, audio[:-1] + b"!")


# --- pacing ---------------------------------------------------------------------------------


def test_pace_replays_a_stream_at_its_recorded_times(tmp_path: Path) -> None:
    import time

    path = tmp_path / "c.json"
    slow = {"x-devserver-chunk-delay-ms": "40"}
    with DevServer() as server, tracer.cassette(path):
        url = server.url
        list(
            oai(url).chat.completions.create(
                model="gpt-4o-mini",
                messages=QUESTION,
                stream=True,
                max_tokens=5,
                extra_headers=slow,
            )
        )
    times = json.loads(path.read_text())["exchanges"][0]["response"]["chunk_ms"]
    assert times[-1] >= 40 * 3
    with tracer.cassette(path, mode="none", pace=True):
        started = time.perf_counter()
        for _ in oai(url).chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, stream=True, max_tokens=5, extra_headers=slow
        ):
            pass
        took = (time.perf_counter() - started) * 1000
    assert took >= times[-1]  # never sooner than recorded (a lower bound only)


# --- bad input --------------------------------------------------------------------------------


def test_a_corrupt_cassette_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        openai_chat(server.url)
    lines = path.read_text().splitlines()
    lines[9] = lines[9] + " oops"
    path.write_text("\n".join(lines))
    with (
        pytest.raises(tracer.CassetteError, match=rf"{path}:10:\d+: not a valid cassette"),
        tracer.cassette(path, mode="none"),
    ):
        pass


def test_a_hand_edited_entry_and_other_versions_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with DevServer() as server, tracer.cassette(path):
        openai_chat(server.url)
    document = json.loads(path.read_text())
    del document["exchanges"][1]["response"]["status"]
    path.write_text(json.dumps(document, indent=2))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"request"' in text)
    second = [n for n, t in enumerate(path.read_text().splitlines(), 1) if '"request"' in t][1]
    assert second > line
    with pytest.raises(tracer.CassetteError, match=rf":{second}: exchange 2 has no \"response\""):
        tracer.cassettes.Cassette(path, "none")
    for version, says in ((99, "newer llm-tracer"), (0, "delete the file to record it again")):
        document["version"] = version
        path.write_text(json.dumps(document))
        with pytest.raises(tracer.CassetteError, match=says):
            tracer.cassettes.Cassette(path, "none")
    path.write_text("[]")
    with pytest.raises(tracer.CassetteError, match="not an llm-tracer cassette"):
        tracer.cassettes.Cassette(path, "once")
    with pytest.raises(ValueError, match="unknown record mode 'sometimes'"):
        tracer.cassettes.Cassette(path, "sometimes")


def test_a_missing_cassette_in_mode_none_says_so(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with tracer.cassette(path, mode="none"), missed("does not exist"):
        oai("http://127.0.0.1:9").chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert not path.exists()


RECORDER = """
import sys, openai, tracer
from tracer import TracedClient
url, path, word = sys.argv[1:]
client = openai.OpenAI(base_url=url + "/v1", api_key="k", http_client=TracedClient())
with tracer.cassette(path, mode="new_episodes"):
    for n in range(5):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{word} {n}"}]
        )
"""


@pytest.mark.e2e
def test_two_processes_recording_into_one_cassette_keep_every_exchange(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    script = tmp_path / "record.py"
    script.write_text(RECORDER)
    with DevServer() as server:
        children = [
            subprocess.Popen([sys.executable, str(script), server.url, str(path), word])
            for word in ("left", "right")
        ]
        assert [child.wait(timeout=120) for child in children] == [0, 0]
    contents = sorted(
        e["request"]["json"]["messages"][0]["content"]
        for e in json.loads(path.read_text())["exchanges"]
    )
    assert contents == sorted(f"{w} {n}" for w in ("left", "right") for n in range(5))


# --- every way in: instrument(), the environment, pytest -------------------------------------


def test_instrumented_clients_go_through_the_cassette(tmp_path: Path, instrumented: None) -> None:
    path = tmp_path / "c.json"

    def plain(url: str) -> Any:
        with openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
            return client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)

    with DevServer() as server, tracer.cassette(path):
        url = server.url
        first = plain(url)
    with tracer.cassette(path, mode="none"):
        assert plain(url) == first
    assert tape_size(path) == 1  # one exchange, not one per tracing layer


APP = """
import os, openai
from tracer import TracedClient
client = openai.OpenAI(
    base_url=os.environ["BASE"] + "/v1", api_key="k", http_client=TracedClient(), max_retries=0
)
hi = [{"role": "user", "content": "hi"}]
print(client.chat.completions.create(model="gpt-4o-mini", messages=hi).id)
"""


@pytest.mark.e2e
def test_the_environment_puts_a_cassette_under_a_whole_program(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("MLFLOW_", "TRACER_"))
    }
    env.update(
        TRACER_CASSETTE=str(tmp_path / "app.json"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db"
    )
    with DevServer() as server:
        env["BASE"] = server.url
        first = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [sys.executable, str(script)],
        env={**env, "TRACER_RECORD_MODE": "none"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and first.stdout.startswith("chatcmpl-")


PYTEST_MODULE = """
import os, openai, pytest
from tracer import TracedClient

def ask(text="hi"):
    client = openai.OpenAI(
        base_url=os.environ["BASE"] + "/v1", api_key="k", http_client=TracedClient(), max_retries=0
    )
    question = [{"role": "user", "content": text}]
    return client.chat.completions.create(model="gpt-4o-mini", messages=question)

@pytest.mark.llm_cassette
def test_asks(llm_spans, llm_cassette):
    reply = ask()
    assert reply.choices[0].message.content
    span = llm_spans.one(api="chat.completions")
    print("REPLAYED", span.attributes["tracer.replayed"], llm_cassette.replayed, reply.id)

@pytest.mark.llm_cassette("shared/answers.json", mode="new_episodes", ignore_fields=["url.port"])
@pytest.mark.parametrize("n", [1, 2])
def test_given_path(n):
    assert ask(f"question {n}").id
"""


@pytest.mark.e2e
def test_the_pytest_marker_records_then_replays_offline(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(PYTEST_MODULE)
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("MLFLOW_", "TRACER_"))
    }
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path}/m.db"
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_app.py"]
    with DevServer() as server:
        env["BASE"] = server.url
        first = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "cassettes" / "test_app" / "test_asks.json").exists()
    assert tape_size(tmp_path / "shared" / "answers.json") == 2
    second = subprocess.run(
        [*command, "--llm-record-mode=none"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    recorded_id = first.stdout.split("REPLAYED False 0 ")[1].split()[0]
    assert f"REPLAYED True 1 {recorded_id}" in second.stdout


def test_an_aiohttp_session_is_refused_where_the_cassette_only_replays(
    tmp_path: Path, instrumented: None, caplog: pytest.LogCaptureFixture
) -> None:
    import aiohttp

    path = tmp_path / "c.json"
    body = {"model": "gpt-4o-mini", "messages": QUESTION}

    async def post(url: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + "/v1/chat/completions", json=body) as response,
        ):
            await response.read()
            return response.status

    with DevServer() as server:
        with tracer.cassette(path, mode="new_episodes"):  # records: sent, with one warning
            assert asyncio.run(post(server.url)) == 200
        assert "aiohttp session, which cassettes do not record" in caplog.text
        assert not path.exists() and len(server.requests) == 1
        with tracer.cassette(path, mode="none"), pytest.raises(tracer.CassetteMiss) as caught:
            asyncio.run(post(server.url))
        assert "only httpx and httpx2 clients are replayed" in str(caught.value)
        assert len(server.requests) == 1  # nothing went to the network


def test_a_request_that_gets_no_response_is_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with tracer.cassette(path) as tape, pytest.raises(openai.APIConnectionError):
        oai("http://127.0.0.1:9").chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert tape.recorded == 0 and not path.exists()


def test_a_broken_cassette_stops_llm_calls_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    monkeypatch.setenv("TRACER_CASSETTE", str(path))
    with DevServer() as server, TracedClient() as http:
        assert http.get(server.url + "/health").status_code == 200  # not an LLM call
        with pytest.raises(tracer.CassetteError, match=r"broken.json:1:2: not a valid cassette"):
            body = {"model": "gpt-4o-mini", "messages": QUESTION}
            http.post(server.url + "/v1/chat/completions", json=body)
        assert [r.path for r in server.requests] == ["/health"]
