"""OpenAI moderations, audio transcriptions and translations (multipart uploads) and speech
(audio out), through the real ``openai`` SDK: the spans record the form and the file's name,
type and size, the audio's type and size, never their bytes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from llm_devserver import DevServer
from openai import OpenAI
from readback import only_span, read_spans, stored

from tracer import TracedClient, TracerConfig

#: One second of 16 kHz mono silence as a WAV file.
WAV = (
    b"RIFF" + struct.pack("<I", 36 + 32000) + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    + b"data" + struct.pack("<I", 32000) + bytes(32000)
)  # fmt: skip


@pytest.fixture
def client(server: DevServer) -> OpenAI:
    return OpenAI(api_key="k", base_url=server.base_url, http_client=TracedClient(), max_retries=0)


def test_moderation_is_a_guardrail_span(client: OpenAI, experiment: str) -> None:
    result = client.moderations.create(model="omni-moderation-latest", input="I will kill it")
    span = only_span(experiment, "GUARDRAIL")
    assert span.name == "moderation omni-moderation-latest"
    assert result.results[0].flagged is True
    assert span.attributes["moderation.flagged"] is True
    categories = result.results[0].categories.model_dump(by_alias=True)
    assert span.attributes["moderation.categories"] == sorted(
        name for name, on in categories.items() if on is True
    )
    assert "violence" in span.attributes["moderation.categories"]
    assert span.inputs["input"] == "I will kill it"


def test_transcription_records_the_file_not_its_bytes(
    client: OpenAI, experiment: str, tmp_path: Path
) -> None:
    path = tmp_path / "meeting.wav"
    path.write_bytes(WAV)
    with path.open("rb") as audio:
        result = client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=audio, language="en", temperature=0.2
        )
        assert audio.tell() == len(WAV)  # the SDK read it all; the tracer took nothing
    span = only_span(experiment, "LLM")
    assert span.name == "transcription gpt-4o-transcribe"
    assert span.inputs == {
        "model": "gpt-4o-transcribe",
        "language": "en",
        "temperature": "0.2",
        "file": {"filename": "meeting.wav", "content_type": "audio/x-wav", "size": len(WAV)},
    }
    assert span.outputs["text"] == result.text
    usage = result.usage
    assert usage is not None and usage.type == "tokens"
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == usage.total_tokens
    assert span.attributes["gen_ai.request.temperature"] == 0.2


def test_text_formats_and_translations(client: OpenAI, experiment: str) -> None:
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("call.wav", io.BytesIO(WAV), "audio/wav"), response_format="text"
    )
    english = client.audio.translations.create(
        model="whisper-1", file=("appel.wav", WAV, "audio/wav")
    )
    transcription, translation = read_spans(experiment, "LLM")
    assert transcription.outputs == {"text": text}
    assert "tracer.problems" not in transcription.attributes
    assert translation.name == "translation whisper-1"
    assert translation.outputs["text"] == english.text
    assert translation.inputs["file"]["filename"] == "appel.wav"


def test_streamed_transcription(client: OpenAI, experiment: str) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe",
            file=("note.wav", WAV, "audio/wav"),
            stream=True,
        )
    )
    done = events[-1]
    assert done.type == "transcript.text.done"
    span = only_span(experiment, "LLM")
    assert span.attributes["stream.completed"] is True
    assert span.outputs["text"] == done.text
    assert span.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0


def test_speech_records_the_audio_type_and_size(client: OpenAI, experiment: str) -> None:
    audio = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello there", response_format="wav"
    ).content
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello there"
    ) as response:
        streamed = b"".join(response.iter_bytes())
    plain, chunked = read_spans(experiment, "LLM")
    assert plain.outputs == {"content_type": "audio/wav", "size": len(audio)}
    assert plain.attributes["audio.size"] == len(audio)
    assert chunked.outputs == {"content_type": "audio/mpeg", "size": len(streamed)}
    assert plain.inputs["input"] == "Hello there"


def test_capture_off_keeps_the_file_description_only(server: DevServer, experiment: str) -> None:
    client = OpenAI(
        api_key="k",
        base_url=server.base_url,
        http_client=TracedClient(config=TracerConfig(capture_content=False)),
    )
    client.audio.transcriptions.create(
        model="whisper-1",
        file=("secret-name.wav", WAV, "audio/wav"),
        prompt="PROMPT-find-me",
        extra_headers={"x-devserver-reply": "REPLY-find-me"},
    )
    client.moderations.create(model="omni-moderation-latest", input="INPUT-find-me")
    dump = stored(experiment)
    assert "find-me" not in dump and "secret-name" not in dump
    span = only_span(experiment, "LLM")
    assert span.inputs["file"] == {"content_type": "audio/wav", "size": len(WAV)}
