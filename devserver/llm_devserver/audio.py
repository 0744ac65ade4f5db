"""OpenAI moderations, audio transcriptions/translations and speech (also Groq's audio).

* ``POST .../moderations`` -- ``input`` (a string, strings, or multimodal ``text`` /
  ``image_url`` parts) to one result per string (one for all parts); inputs with words like
  "kill", "murder", "kill myself", "make a bomb" are flagged, deterministically.
* ``POST .../audio/transcriptions`` and ``.../audio/translations`` -- ``multipart/form-data``
  with a ``file`` part (``flac``, ``m4a``, ``mp3``, ``mp4``, ``mpeg``, ``mpga``, ``oga``, ``ogg``,
  ``wav`` or ``webm`` by its file name), ``model``, ``response_format`` (``json``, ``text``,
  ``srt``, ``verbose_json``, ``vtt``, ``diarized_json``), ``language``, ``prompt``,
  ``temperature``, ``timestamp_granularities[]``, ``include[]`` and ``stream``. The text says
  how many bytes of which file it heard; the duration comes from the file's headers (WAV, FLAC,
  Ogg, ADTS AAC, MP3), else from its size (16 kB/s). ``gpt-4o(-mini)-transcribe`` models take
  ``json``/``text`` only, report token usage and stream ``transcript.text.delta`` /
  ``transcript.text.done`` SSE events; ``whisper-1`` reports ``duration`` usage and ignores
  ``stream``; the ``-diarize`` model answers ``diarized_json`` with speaker segments (and
  ``transcript.text.segment`` events).
* ``POST .../audio/speech`` -- JSON in, a small valid audio file of ``response_format`` out
  (``mp3``, ``opus``, ``aac``, ``flac``, ``wav``, ``pcm``: silence at 24 kHz, mono, about 30 ms
  per input character), sent chunked; ``stream_format: "sse"`` streams ``speech.audio.delta``
  events with base64 audio, then ``speech.audio.done`` with usage.
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import hashlib
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from typing import Any

from llm_devserver.chat import openai_stream_error
from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    count_tokens,
    data_frame,
    logprob_value,
    rand_hex,
    required_model,
    split_pieces,
)

__all__ = [
    "SAMPLE_RATE",
    "BytesReply",
    "Form",
    "FormFile",
    "audio_seconds",
    "moderations_reply",
    "parse_form",
    "speech_reply",
    "transcription_reply",
]

SAMPLE_RATE = 24_000
SECONDS_PER_CHAR = 0.03
MAX_SPEECH_INPUT = 4096
AUDIO_CHUNK = 4096
ASSUMED_BYTES_PER_SECOND = 16_000  # a 128 kbit/s compressed file
FILE_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
LANGUAGES = {
    "en": "english",
    "fr": "french",
    "de": "german",
    "es": "spanish",
    "it": "italian",
    "ja": "japanese",
    "zh": "chinese",
    "pt": "portuguese",
    "nl": "dutch",
}
_WORDS_PER_SEGMENT = 8


@dataclass
class BytesReply:
    """A complete non-JSON response (plain text, subtitles)."""

    body: bytes
    content_type: str
    status: int = 200


# --------------------------------------------------------------------------------------------
# Moderations
# --------------------------------------------------------------------------------------------

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
IMAGE_CATEGORIES = frozenset(
    (
        "self-harm",
        "self-harm/intent",
        "self-harm/instructions",
        "sexual",
        "violence",
        "violence/graphic",
    )
)
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "harassment": (r"\bidiot", r"\bloser\b", r"\b(kill|hurt) you\b"),
    "harassment/threatening": (r"\b(kill|hurt) you\b", r"\bthreaten"),
    "hate": (r"\bi hate (all|every)\b", r"\bsubhuman\b"),
    "hate/threatening": (r"\bexterminate\b",),
    "illicit": (r"\bsteal\b", r"\bbuy drugs\b", r"\bmake a bomb\b", r"\bhack into\b"),
    "illicit/violent": (r"\bmake a bomb\b", r"\bbuild a weapon\b"),
    "self-harm": (r"\b(kill|hurt) myself\b", r"\bsuicide\b"),
    "self-harm/intent": (r"\b(kill|hurt) myself\b", r"\bwant to die\b"),
    "self-harm/instructions": (r"\bhow to (kill|hurt) myself\b",),
    "sexual": (r"\bnsfw\b", r"\bexplicit sex"),
    "sexual/minors": (),
    "violence": (r"\bkill", r"\bmurder", r"\bshoot", r"\bstab", r"\bexterminate\b"),
    "violence/graphic": (r"\bgore\b", r"\bdismember", r"\bblood everywhere\b"),
}
_MODERATION_MODELS = {
    "omni-moderation-latest": "omni-moderation-latest",
    "text-moderation-latest": "text-moderation-007",
    "text-moderation-stable": "text-moderation-007",
}


def _unit(seed: str) -> float:
    """A deterministic number in [0, 1) for ``seed``."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") / 2**32


def _moderation_units(value: Any, omni: bool) -> list[tuple[str, int]]:
    """``(text, images)`` per result: one per string, or one for a list of multimodal parts."""
    if isinstance(value, str):
        return [(value, 0)]
    if not isinstance(value, list) or not value:
        raise ApiError("Invalid value for 'input': expected a string or an array.", param="input")
    if all(isinstance(v, str) for v in value):
        return [(v, 0) for v in value]
    if not omni:
        raise ApiError(
            "Invalid type for 'input': this model only supports text inputs.", param="input"
        )
    texts: list[str] = []
    images = 0
    for part in value:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            images += 1
        else:
            raise ApiError(
                "Invalid value for 'input': each part must be a 'text' or 'image_url' object.",
                param="input",
            )
    if images > 1:
        raise ApiError("Only one image is supported per moderation request.", param="input")
    return [(" ".join(texts), images)]


def _moderation(text: str, images: int, omni: bool) -> dict[str, Any]:
    lowered = text.lower()
    categories: dict[str, bool] = {}
    scores: dict[str, float] = {}
    applied: dict[str, list[str]] = {}
    for name in CATEGORIES:
        if not omni and name.startswith("illicit"):
            continue
        hit = any(re.search(pattern, lowered) for pattern in _TRIGGERS[name])
        jitter = _unit(f"{name}:{text}")
        categories[name] = hit
        scores[name] = round(0.9 + 0.09 * jitter, 6) if hit else float(f"{jitter * 1e-4:.6g}")
        kinds = ["text"] if text else []
        if images and name in IMAGE_CATEGORIES:
            kinds.append("image")
        applied[name] = kinds
    result: dict[str, Any] = {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
    }
    if omni:
        result["category_applied_input_types"] = applied
    return result


def moderations_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST /v1/moderations``."""
    del ctl
    model = request.get("model")
    model = "omni-moderation-latest" if model is None else model
    if not isinstance(model, str) or not model:
        raise ApiError("Invalid value for 'model': expected a string.", param="model")
    omni = "omni" in model
    if "input" not in request:
        raise ApiError("Missing required parameter: 'input'.", param="input")
    units = _moderation_units(request["input"], omni)
    return JsonReply(
        {
            "id": "modr-" + rand_hex(32),
            "model": _MODERATION_MODELS.get(model, model),
            "results": [_moderation(text, images, omni) for text, images in units],
        }
    )


# --------------------------------------------------------------------------------------------
# Multipart forms
# --------------------------------------------------------------------------------------------


@dataclass
class FormFile:
    """One uploaded file of a multipart form."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    """A parsed ``multipart/form-data`` body: text fields (repeatable) and files."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, FormFile] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """The first value of field ``name``, or None."""
        values = self.fields.get(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        """Every value of a list field, sent as ``name[]`` (or repeated ``name``)."""
        return self.fields.get(name + "[]", []) + self.fields.get(name, [])


def parse_form(content_type: str, body: bytes) -> Form:
    """Parse a ``multipart/form-data`` body; ApiError when it is not one."""
    header = email.message.Message()
    header["content-type"] = content_type or "application/octet-stream"
    if header.get_content_type() != "multipart/form-data":
        raise ApiError(
            f"Invalid Content-Type header ({content_type or 'none'}), expected "
            "multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: "
            "multipart/form-data')"
        )
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ApiError("Could not parse multipart form: the boundary is missing.")
    form = Form()
    parser = email.parser.BytesHeaderParser(policy=policy.HTTP)
    for section in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if section.startswith(b"--"):
            break
        head, sep, data = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ApiError("Could not parse multipart form: a part has no header.")
        part = parser.parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = data.removesuffix(b"\r\n")
        filename = part.get_filename()
        if filename is not None:
            form.files[name] = FormFile(filename, part.get_content_type(), data)
        else:
            form.fields.setdefault(name, []).append(data.decode("utf-8", "replace"))
    return form


# --------------------------------------------------------------------------------------------
# Transcriptions and translations
# --------------------------------------------------------------------------------------------


def _wav_seconds(data: bytes) -> float | None:
    """The duration of a RIFF/WAVE file from its ``fmt`` and ``data`` chunks."""
    pos = 12
    byte_rate = 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"fmt " and size >= 16:
            byte_rate = struct.unpack("<I", data[pos + 16 : pos + 20])[0]
        elif chunk == b"data":
            available = min(size, len(data) - pos - 8)
            return available / byte_rate if byte_rate else None
        pos += 8 + size + (size & 1)
    return None


def _flac_seconds(data: bytes) -> float | None:
    """The duration of a FLAC file from its STREAMINFO block."""
    if len(data) < 26 or data[4] & 0x7F != 0:
        return None
    packed = int.from_bytes(data[18:26], "big")
    rate, total = packed >> 44, packed & (2**36 - 1)
    return total / rate if rate and total else None


def _ogg_seconds(data: bytes) -> float | None:
    """The duration of an Ogg Opus or Vorbis file: the last page's granule position."""
    if len(data) < 28:
        return None
    head = data[27 + data[26] :]
    if head.startswith(b"OpusHead") and len(head) >= 12:
        rate, skip = 48_000, int.from_bytes(head[10:12], "little")
    elif head.startswith(b"\x01vorbis") and len(head) >= 16:
        rate, skip = int.from_bytes(head[12:16], "little"), 0
    else:
        return None
    last = data.rfind(b"OggS")
    if last < 0 or last + 14 > len(data) or not rate:
        return None
    granule = int.from_bytes(data[last + 6 : last + 14], "little", signed=True)
    return max(0, granule - skip) / rate


_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def _adts_seconds(data: bytes) -> float | None:
    """The duration of an AAC ADTS stream: its frames' samples."""
    pos = 0
    seconds = 0.0
    while pos + 7 <= len(data) and data[pos] == 0xFF and data[pos + 1] & 0xF6 == 0xF0:
        rate_index = (data[pos + 2] >> 2) & 0xF
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if rate_index >= len(_ADTS_RATES) or length < 7:
            break
        seconds += 1024 * ((data[pos + 6] & 3) + 1) / _ADTS_RATES[rate_index]
        pos += length
    return seconds or None


_MP3_KBPS = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 Layer III
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2 Layer III
}


def _mp3_seconds(data: bytes) -> float | None:
    """The duration of an MP3 file, from its first frame's bit rate (as if CBR)."""
    pos = 0
    if data.startswith(b"ID3") and len(data) >= 10:
        pos = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
        pos += 10 if data[5] & 0x10 else 0
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
    if layer != 1 or version == 1:
        return None
    table = _MP3_KBPS[3 if version == 3 else 2]
    index = data[pos + 2] >> 4
    kbps = table[index] if index < len(table) else 0
    return (len(data) - pos) * 8 / (kbps * 1000) if kbps else None


def audio_seconds(data: bytes) -> float | None:
    """The duration of a WAV, FLAC, Ogg (Opus, Vorbis), AAC (ADTS) or MP3 file, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_seconds(data)
    if data[:4] == b"fLaC":
        return _flac_seconds(data)
    if data[:4] == b"OggS":
        return _ogg_seconds(data)
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:
        return _adts_seconds(data)
    return _mp3_seconds(data)


@dataclass
class _Segment:
    index: int
    start: float
    end: float
    text: str


def _segments(text: str, duration: float) -> list[_Segment]:
    """The text cut into segments of a few words, their times spread over the duration."""
    words = text.split()
    total = max(1, len(text))
    segments: list[_Segment] = []
    offset = 0
    for k in range(0, max(1, len(words)), _WORDS_PER_SEGMENT):
        chunk = " ".join(words[k : k + _WORDS_PER_SEGMENT])
        start = offset
        offset += len(chunk) + 1
        segments.append(
            _Segment(
                index=len(segments),
                start=round(duration * start / total, 2),
                end=round(min(duration, duration * offset / total), 2),
                text=chunk,
            )
        )
    return segments


def _token_ids(text: str) -> list[int]:
    return [
        int.from_bytes(hashlib.sha256(w.encode()).digest()[:2], "big") % 50000 + 200
        for w in text.split()
    ]


def _verbose_segment(segment: _Segment, temperature: float) -> dict[str, Any]:
    return {
        "id": segment.index,
        "seek": 0,
        "start": segment.start,
        "end": segment.end,
        "text": " " + segment.text,
        "tokens": [50364, *_token_ids(segment.text), 50364 + int(segment.end * 50)],
        "temperature": temperature,
        "avg_logprob": round(-0.18 - 0.1 * _unit(segment.text), 6),
        "compression_ratio": 1.2,
        "no_speech_prob": round(0.001 + 0.01 * _unit("ns" + segment.text), 6),
    }


def _words(segments: list[_Segment]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for segment in segments:
        words = segment.text.split()
        step = (segment.end - segment.start) / max(1, len(words))
        for k, word in enumerate(words):
            start = segment.start + k * step
            out.append({"word": word, "start": round(start, 2), "end": round(start + step, 2)})
    return out


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _subtitles(segments: list[_Segment], vtt: bool) -> str:
    blocks: list[str] = []
    for segment in segments:
        sep = "." if vtt else ","
        times = f"{_timestamp(segment.start, sep)} --> {_timestamp(segment.end, sep)}"
        number = "" if vtt else f"{segment.index + 1}\n"
        blocks.append(f"{number}{times}\n{segment.text}\n")
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(blocks) + "\n"


def _logprobs(pieces: list[str], first: int = 0) -> list[dict[str, Any]]:
    return [
        {"token": piece, "logprob": logprob_value(k), "bytes": list(piece.encode("utf-8"))}
        for k, piece in enumerate(pieces, start=first)
    ]


def _float_field(form: Form, name: str, default: float, low: float, high: float) -> float:
    raw = form.value(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(f"Invalid value for '{name}': expected a number.", param=name) from None
    if not low <= value <= high:
        raise ApiError(
            f"Invalid '{name}': expected a value between {low:g} and {high:g}.", param=name
        )
    return value


@dataclass
class _Transcript:
    """What the model heard in one upload."""

    model: str
    text: str
    duration: float
    language: str
    temperature: float
    task: str
    prompt_tokens: int
    logprobs: bool
    groq_id: str | None

    def token_usage(self) -> dict[str, Any]:
        """``usage`` of the token-billed (``gpt-4o-*``) models."""
        audio = max(1, math.ceil(self.duration * 10))
        output = count_tokens(self.text)
        return {
            "type": "tokens",
            "input_tokens": audio + self.prompt_tokens,
            "input_token_details": {"text_tokens": self.prompt_tokens, "audio_tokens": audio},
            "output_tokens": output,
            "total_tokens": audio + self.prompt_tokens + output,
        }

    def usage(self) -> dict[str, Any]:
        """``usage`` as the model reports it: tokens, or whole seconds of audio."""
        if _is_gpt(self.model):
            return self.token_usage()
        return {"type": "duration", "seconds": max(1, math.ceil(self.duration))}

    def tag(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with Groq's ``x_groq`` id when answering as Groq."""
        if self.groq_id is not None:
            payload["x_groq"] = {"id": self.groq_id}
        return payload


def _is_gpt(model: str) -> bool:
    return model.startswith("gpt-") or "-transcribe" in model


def _formats(model: str, translate: bool) -> tuple[str, ...]:
    if translate or not _is_gpt(model):
        return ("json", "text", "srt", "verbose_json", "vtt")
    if "diarize" in model:
        return ("json", "text", "diarized_json")
    return ("json", "text")


def _diarized(transcript: _Transcript) -> list[dict[str, Any]]:
    return [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{segment.index:03d}",
            "start": segment.start,
            "end": segment.end,
            "text": segment.text,
            "speaker": "AB"[segment.index % 2],
        }
        for segment in _segments(transcript.text, transcript.duration)
    ]


def _transcript_stream(transcript: _Transcript, diarize: bool) -> StreamReply:
    events: list[dict[str, Any]] = []
    segments = _diarized(transcript) if diarize else []
    groups = [(s["text"], s) for s in segments] if diarize else [(transcript.text, None)]
    position = 0
    for k, (text, segment) in enumerate(groups):
        for piece in split_pieces((" " if k else "") + text):
            delta: dict[str, Any] = {"type": "transcript.text.delta", "delta": piece}
            if transcript.logprobs:
                delta["logprobs"] = _logprobs([piece], position)
            position += 1
            if segment is not None:
                delta["segment_id"] = segment["id"]
            events.append(delta)
        if segment is not None:
            events.append(segment)
    done: dict[str, Any] = {"type": "transcript.text.done", "text": transcript.text}
    if transcript.logprobs:
        done["logprobs"] = _logprobs(split_pieces(transcript.text))
    done["usage"] = transcript.token_usage()
    events.append(done)
    return StreamReply([data_frame(e) for e in events], openai_stream_error)


def _transcript_reply(
    transcript: _Transcript, response_format: str, granularities: list[str], stream: bool
) -> Reply | BytesReply:
    diarize = "diarize" in transcript.model
    if stream and _is_gpt(transcript.model) and transcript.task == "transcribe":
        return _transcript_stream(transcript, diarize and response_format == "diarized_json")
    segments = _segments(transcript.text, transcript.duration)
    if response_format == "text":
        return BytesReply((transcript.text + "\n").encode(), "text/plain; charset=utf-8")
    if response_format in ("srt", "vtt"):
        body = _subtitles(segments, response_format == "vtt").encode()
        return BytesReply(body, "text/plain; charset=utf-8")
    if response_format == "diarized_json":
        payload: dict[str, Any] = {
            "task": "transcribe",
            "duration": round(transcript.duration, 2),
            "text": transcript.text,
            "segments": _diarized(transcript),
            "usage": transcript.token_usage(),
        }
        return JsonReply(payload)
    if response_format == "verbose_json":
        payload = {
            "task": transcript.task,
            "language": transcript.language,
            "duration": round(transcript.duration, 2),
            "text": transcript.text,
        }
        if "word" in granularities:
            payload["words"] = _words(segments)
        if "segment" in granularities or not granularities:
            payload["segments"] = [_verbose_segment(s, transcript.temperature) for s in segments]
        if transcript.task == "transcribe" and transcript.groq_id is None:
            payload["usage"] = transcript.usage()
        return JsonReply(transcript.tag(payload))
    payload = {"text": transcript.text}
    if transcript.logprobs and _is_gpt(transcript.model):
        payload["logprobs"] = _logprobs(split_pieces(transcript.text))
    if transcript.task == "transcribe" and transcript.groq_id is None:
        payload["usage"] = transcript.usage()
    return JsonReply(transcript.tag(payload))


def transcription_reply(
    form: Form, ctl: Controls, *, translate: bool = False, groq_id: str | None = None
) -> Reply | BytesReply:
    """Answer ``POST .../audio/transcriptions`` (or ``/translations``) from a parsed form.

    ``groq_id`` answers as Groq does (``x_groq`` in JSON bodies, no ``usage``).
    """
    upload = form.files.get("file")
    if upload is None:
        raise ApiError("Missing required parameter: 'file'.", param="file")
    model = form.value("model")
    if not model:
        raise ApiError("Missing required parameter: 'model'.", param="model")
    extension = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
    if extension not in FILE_FORMATS:
        raise ApiError(f"Unrecognized file format. Supported formats: {list(FILE_FORMATS)}")
    response_format = form.value("response_format") or "json"
    allowed = _formats(model, translate)
    if response_format not in allowed:
        raise ApiError(
            f"response_format '{response_format}' is not compatible with model '{model}'. "
            f"Use {' or '.join(repr(f) for f in allowed[:2])} instead.",
            param="response_format",
            code="unsupported_value",
        )
    temperature = _float_field(form, "temperature", 0.0, 0.0, 1.0)
    measured = audio_seconds(upload.data)
    duration = measured if measured is not None else len(upload.data) / ASSUMED_BYTES_PER_SECOND
    if not upload.data or duration < 0.1:
        raise ApiError(
            "Audio file is too short. Minimum audio length is 0.1 seconds.",
            param="file",
            code="audio_too_short",
        )
    language = form.value("language") or "en"
    size = len(upload.data)
    if ctl.reply is not None:
        text = ctl.reply
    elif translate:
        text = f"Translated {size} bytes of {upload.filename} into English."
    else:
        text = f"Transcribed {size} bytes of {upload.filename}."
    transcript = _Transcript(
        model=model,
        text=text,
        duration=duration,
        language="english" if translate else LANGUAGES.get(language.lower(), language),
        temperature=temperature,
        task="translate" if translate else "transcribe",
        prompt_tokens=count_tokens(form.value("prompt") or ""),
        logprobs="logprobs" in form.values("include"),
        groq_id=groq_id,
    )
    stream = (form.value("stream") or "").lower() == "true"
    granularities = form.values("timestamp_granularities")
    return _transcript_reply(transcript, response_format, granularities, stream)


# --------------------------------------------------------------------------------------------
# Speech: small valid audio files (silence)
# --------------------------------------------------------------------------------------------


def _crc_table(poly: int, width: int) -> list[int]:
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    table: list[int] = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else (crc << 1)
        table.append(crc & mask)
    return table


_CRC8 = _crc_table(0x07, 8)  # FLAC frame headers
_CRC16 = _crc_table(0x8005, 16)  # FLAC frames
_CRC32 = _crc_table(0x04C11DB7, 32)  # Ogg pages


def _crc(data: bytes, table: list[int], width: int) -> int:
    crc = 0
    mask = (1 << width) - 1
    for byte in data:
        crc = ((crc << 8) & mask) ^ table[((crc >> (width - 8)) ^ byte) & 0xFF]
    return crc


def wav_bytes(samples: int) -> bytes:
    """A 16-bit mono PCM WAV file of ``samples`` silent samples at 24 kHz."""
    data = bytes(2 * samples)
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def _syncsafe(n: int) -> bytes:
    return bytes(((n >> shift) & 0x7F) for shift in (21, 14, 7, 0))


def mp3_bytes(samples: int) -> bytes:
    """An ID3v2.4 tag, then silent MPEG-2 Layer III frames (24 kHz, 32 kbit/s, mono)."""
    text = b"\x03Lavf61.7.100"
    frame = b"TSSE" + _syncsafe(len(text)) + b"\x00\x00" + text
    tag = b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame
    # 72 * 32000 / 24000 = 96 bytes per frame of 576 samples; all-zero side info = silence
    mpeg_frame = b"\xff\xf3\x44\xc4" + bytes(92)
    return tag + mpeg_frame * max(1, math.ceil(samples / 576))


def aac_bytes(samples: int) -> bytes:
    """ADTS frames of silent AAC-LC (24 kHz, mono), 1024 samples each."""
    payload = b"\x01\x40\x00\x07"  # SCE with max_sfb 0 (no spectral data), then END
    length = 7 + len(payload)
    header = bytes(
        (
            0xFF,
            0xF1,  # MPEG-4, layer 0, no CRC
            (1 << 6) | (6 << 2) | 0,  # AAC LC, 24 kHz, channel config high bit 0
            (1 << 6) | (length >> 11),  # channel config 1
            (length >> 3) & 0xFF,
            ((length & 0x7) << 5) | 0x1F,  # buffer fullness 0x7FF (VBR)
            0xFC,  # ... and one raw data block
        )
    )
    return (header + payload) * max(1, math.ceil(samples / 1024))


def _flac_number(n: int) -> bytes:
    """FLAC's UTF-8-like coding of a frame number."""
    if n < 0x80:
        return bytes((n,))
    count = next(c for c, limit in ((2, 0x800), (3, 0x10000), (4, 0x200000)) if n < limit)
    tail = [0x80 | ((n >> (6 * i)) & 0x3F) for i in reversed(range(count - 1))]
    lead = ((0xFF << (8 - count)) & 0xFF) | (n >> (6 * (count - 1)))
    return bytes((lead, *tail))


def flac_bytes(samples: int) -> bytes:
    """A FLAC file (16-bit mono, 24 kHz) of CONSTANT-zero subframes, 4096 samples a frame."""
    block = 4096
    frames: list[bytes] = []
    for number, start in enumerate(range(0, max(1, samples), block)):
        size = min(block, samples - start) if samples else 1
        code = 0b1100 if size == block else 0b0111
        header = b"\xff\xf8" + bytes(((code << 4) | 0b0111, 0x08)) + _flac_number(number)
        if code == 0b0111:
            header += struct.pack(">H", size - 1)
        header += bytes((_crc(header, _CRC8, 8),))
        frame = header + b"\x00\x00\x00"  # CONSTANT subframe, value 0
        frames.append(frame + struct.pack(">H", _crc(frame, _CRC16, 16)))
    total = max(1, samples)
    sizes = [len(f) for f in frames]
    info = struct.pack(">HH", block, block)
    info += min(sizes).to_bytes(3, "big") + max(sizes).to_bytes(3, "big")
    packed = (SAMPLE_RATE << 44) | (0 << 41) | (15 << 36) | total
    info += packed.to_bytes(8, "big") + hashlib.md5(bytes(2 * total)).digest()
    return b"fLaC" + bytes((0x80,)) + len(info).to_bytes(3, "big") + info + b"".join(frames)


def _ogg_page(flags: int, granule: int, serial: int, sequence: int, packets: list[bytes]) -> bytes:
    lacing: list[int] = []
    for packet in packets:
        lacing.extend([255] * (len(packet) // 255))
        lacing.append(len(packet) % 255)
    header = b"OggS" + bytes((0, flags)) + struct.pack("<qIII", granule, serial, sequence, 0)
    page = header + bytes((len(lacing),)) + bytes(lacing) + b"".join(packets)
    crc = _crc(page, _CRC32, 32)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def opus_bytes(samples: int) -> bytes:
    """An Ogg Opus file of 20 ms silent CELT packets (mono, 24 kHz input rate)."""
    pre_skip = 312
    serial = 0x5EED0A11
    head = b"OpusHead" + bytes((1, 1)) + struct.pack("<HIhB", pre_skip, SAMPLE_RATE, 0, 0)
    vendor = b"tracer-devserver"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [_ogg_page(0x02, 0, serial, 0, [head]), _ogg_page(0x00, 0, serial, 1, [tags])]
    total48 = samples * 2  # granule positions count 48 kHz samples
    count = max(1, math.ceil((total48 + pre_skip) / 960))
    per_page = 50
    for first in range(0, count, per_page):
        n = min(per_page, count - first)
        last = first + n >= count
        granule = pre_skip + total48 if last else (first + n) * 960
        packets = [b"\xf8\xff\xfe"] * n  # TOC: CELT FB 20 ms mono, one silent frame
        pages.append(_ogg_page(0x04 if last else 0x00, granule, serial, len(pages), packets))
    return b"".join(pages)


ENCODERS: dict[str, Callable[[int], bytes]] = {
    "mp3": mp3_bytes,
    "opus": opus_bytes,
    "aac": aac_bytes,
    "flac": flac_bytes,
    "wav": wav_bytes,
    "pcm": lambda samples: bytes(2 * samples),
}


def _speech_stream_error(_sent: int) -> bytes:
    return b""  # a binary body cannot carry an error: the audio just stops short


def speech_reply(request: dict[str, Any], ctl: Controls) -> Reply:
    """Answer ``POST .../audio/speech``: audio bytes (chunked), or SSE audio events."""
    del ctl
    model = required_model(request, None)
    text = request.get("input")
    if not isinstance(text, str):
        raise ApiError("Missing required parameter: 'input'.", param="input")
    if len(text) > MAX_SPEECH_INPUT:
        raise ApiError(
            f"string too long. Expected a string with maximum length {MAX_SPEECH_INPUT}, but "
            f"got a string with length {len(text)} instead.",
            param="input",
            code="string_above_max_length",
        )
    voice = request.get("voice")
    voice_ok = voice in VOICES or (isinstance(voice, dict) and isinstance(voice.get("id"), str))
    if not voice_ok:
        raise ApiError(
            f"Invalid value for 'voice': {voice!r}. Supported values are: "
            f"{', '.join(repr(v) for v in VOICES)}.",
            param="voice",
        )
    fmt = request.get("response_format", "mp3")
    if fmt not in SPEECH_TYPES:
        raise ApiError(
            f"Invalid value for 'response_format': {fmt!r}. Supported values are: "
            f"{', '.join(repr(f) for f in SPEECH_TYPES)}.",
            param="response_format",
        )
    speed = request.get("speed", 1.0)
    if not isinstance(speed, int | float) or isinstance(speed, bool) or not 0.25 <= speed <= 4:
        raise ApiError("Invalid 'speed': expected a number between 0.25 and 4.0.", param="speed")
    if request.get("instructions") and model.startswith("tts-1"):
        raise ApiError(f"Instructions are not supported for model '{model}'.", param="instructions")
    stream_format = request.get("stream_format", "audio")
    if stream_format not in ("audio", "sse"):
        raise ApiError(
            f"Invalid value for 'stream_format': {stream_format!r}.", param="stream_format"
        )
    if stream_format == "sse" and model.startswith("tts-1"):
        raise ApiError(
            f"stream_format 'sse' is not supported for model '{model}'.", param="stream_format"
        )
    seconds = max(0.25, len(text) * SECONDS_PER_CHAR) / float(speed)
    audio = ENCODERS[fmt](max(1, round(seconds * SAMPLE_RATE)))
    chunks = [audio[i : i + AUDIO_CHUNK] for i in range(0, len(audio), AUDIO_CHUNK)]
    if stream_format == "sse":
        input_tokens = count_tokens(text)
        output_tokens = max(1, math.ceil(seconds * 12.5))
        events: list[dict[str, Any]] = [
            {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")}
            for chunk in chunks
        ]
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        events.append({"type": "speech.audio.done", "usage": usage})
        return StreamReply([data_frame(e) for e in events], openai_stream_error)
    return StreamReply(chunks, _speech_stream_error, content_type=SPEECH_TYPES[fmt])
