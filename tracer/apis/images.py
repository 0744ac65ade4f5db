"""OpenAI image generation (``POST .../images/generations``), streamed or not.

Recorded as a ``TOOL`` span, the span type ``mlflow.openai.autolog()`` gives
``images.generate``. OpenTelemetry's GenAI conventions define no operation for image
generation; the operation is ``image_generation``, the name OpenTelemetry's own OpenAI
instrumentation uses, so the span is named ``image_generation {model}``.

Generated images are not recorded by default: each ``b64_json`` payload (often megabytes) is
replaced by the placeholder :func:`tracer.redact.media_placeholder` writes for inline media,
``[image/png omitted: 1234 bytes as base64]``; ``TRACER_CAPTURE_MEDIA`` keeps them as sent.
Image URLs and revised prompts are content: kept unless ``TRACER_CAPTURE_CONTENT`` is off.

A stream (``stream: true``, GPT image models) of ``image_generation.partial_image`` and
``image_generation.completed`` events is rebuilt into the non-streaming ``ImagesResponse``
from its ``completed`` event(s); partial images are counted (``images.partial_count``), not
kept. ``/images/edits`` and ``/images/variations`` are multipart uploads, not JSON, and are not
recognised.
"""

from __future__ import annotations

from typing import Any

from tracer.apis.base import (
    ApiSpec,
    ResponseSummary,
    StreamBase,
    error_message,
    int_or_none,
    parse_event,
    str_or_none,
    token_usage,
)
from tracer.apis.keep import COUNTS, ERROR, FLAG, NUMBER, TEXT, Shape, keep, one_of
from tracer.config import TracerConfig
from tracer.redact import media_placeholder

__all__ = ["IMAGES", "Images", "ImagesStream", "image_media_type", "images_usage"]

_SIZE = one_of(
    "auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"
)
_QUALITY = one_of("auto", "standard", "hd", "low", "medium", "high", "xhigh", "max")
_FORMAT = one_of("png", "jpeg", "webp", "gif", "svg")
_BACKGROUND = one_of("auto", "transparent", "opaque")
#: Response fields recorded as ``images.<field>`` attributes (the settings actually used):
#: only values the API documents, since a server may echo what the request said.
_SETTINGS = {
    "size": _SIZE,
    "quality": _QUALITY,
    "output_format": _FORMAT,
    "background": _BACKGROUND,
}
_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
#: How base64 image data begins, by format (for servers that do not name the format).
_SIGNATURES = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("UklGR", "image/webp"),
    ("R0lGOD", "image/gif"),
)
_COMPLETED = ("image_generation.completed",)
_PARTIAL = ("image_generation.partial_image",)


def image_media_type(output_format: Any, b64: str) -> str:
    """The media type of a base64 image: from the response's ``output_format``, else from
    the image's first bytes, else ``image``."""
    if isinstance(output_format, str) and output_format.lower() in _FORMATS:
        return _FORMATS[output_format.lower()]
    for prefix, media_type in _SIGNATURES:
        if b64.startswith(prefix):
            return media_type
    return "image"


def images_usage(usage: Any) -> dict[str, int] | None:
    """MLflow's token-usage dict from an images ``usage`` object (GPT image models)."""
    if not isinstance(usage, dict):
        return None
    return token_usage(
        usage.get("input_tokens"), usage.get("output_tokens"), usage.get("total_tokens")
    )


def _omit_images(response: dict[str, Any]) -> dict[str, Any]:
    """``response`` with each ``b64_json`` image replaced by a placeholder (a copy, when
    there is one to replace)."""
    data = response.get("data")
    if not isinstance(data, list):
        return response
    output_format = response.get("output_format")
    items: list[Any] = []
    for item in data:
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if isinstance(b64, str) and b64:
            placeholder = media_placeholder(image_media_type(output_format, b64), b64)
            item = {**item, "b64_json": placeholder}
        items.append(item)
    return {**response, "data": items}


class Images(ApiSpec):
    """OpenAI image generation."""

    name = "images.generations"
    operation = "image_generation"
    span_type = "TOOL"
    message_format = None
    content_keys = ("prompt",)
    #: Never the prompt or the user.
    kept_request: Shape = {
        "model": TEXT,
        "n": NUMBER,
        "size": _SIZE,
        "quality": _QUALITY,
        "style": one_of("vivid", "natural"),
        "output_format": _FORMAT,
        "output_compression": NUMBER,
        "background": _BACKGROUND,
        "moderation": one_of("low", "auto"),
        "response_format": one_of("url", "b64_json"),
        "stream": FLAG,
        "partial_images": NUMBER,
    }
    #: Never the images, their URLs or revised prompts: one empty object per image.
    kept_response: Shape = {
        "created": NUMBER,
        "usage": COUNTS,
        "error": ERROR,
        "size": _SIZE,
        "quality": _QUALITY,
        "output_format": _FORMAT,
        "background": _BACKGROUND,
        "data": [{}],
    }

    def summarize(self, response: Any) -> ResponseSummary:
        """Model (rarely in the response), usage, error, ``images.count`` and the settings the
        server used (``images.size``, ``.quality``, ``.output_format``, ``.background``)."""
        if not isinstance(response, dict):
            return ResponseSummary()
        summary = ResponseSummary(
            model=str_or_none(response.get("model")),
            usage=images_usage(response.get("usage")),
            error=error_message(response) if response.get("error") else None,
        )
        data = response.get("data")
        if isinstance(data, list):
            summary.attributes["images.count"] = len(data)
        for key, shape in _SETTINGS.items():
            value = keep(response.get(key), shape)
            if value is not None:
                summary.attributes[f"images.{key}"] = value
        return summary

    def outputs(self, response: Any, config: TracerConfig) -> Any:
        """The response; images as placeholders unless media capture is on; no image, URL or
        revised prompt when content capture is off."""
        if not config.capture_content:
            return self.strip_content(response)
        if not isinstance(response, dict):
            return response
        return response if config.capture_media else _omit_images(response)

    def new_stream(self) -> ImagesStream:
        """A fresh accumulator for one streamed image generation."""
        return ImagesStream()


IMAGES = Images()


class ImagesStream(StreamBase):
    """Accumulates image-generation stream events into one ``ImagesResponse``.

    Each ``completed`` event gives one image of ``data``; the settings (size, quality, format,
    background) and the usage are those of the last one. Partial images are only counted.
    """

    __slots__ = ("_created", "_images", "_partials", "_settings", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._created: int | None = None
        self._images: list[dict[str, Any]] = []
        self._partials = 0
        self._settings: dict[str, Any] = {}
        self._usage: Any = None

    def add(self, event: str, data: str) -> None:
        """Take one event of the stream."""
        payload = parse_event(data, self._problems)
        if payload is None:
            return
        kind = payload.get("type") or event
        if kind == "error" or payload.get("error"):
            error = payload.get("error")
            self._error = (
                error
                if isinstance(error, dict)
                else {k: v for k, v in payload.items() if k != "type"}
            )
            return
        if kind not in _COMPLETED and kind not in _PARTIAL:
            return
        if self._created is None:
            self._created = int_or_none(payload.get("created_at"))
        for key in _SETTINGS:
            if key in payload:
                self._settings[key] = payload[key]
        if kind in _PARTIAL:
            self._partials += 1
            return
        b64 = payload.get("b64_json")
        self._images.append({"b64_json": b64} if isinstance(b64, str) else {})
        if payload.get("usage") is not None:
            self._usage = payload["usage"]
        self.completed = True

    @property
    def ended(self) -> bool:
        """Only an error event ends the stream early: with ``n > 1`` several images complete."""
        return self._error is not None

    @property
    def attributes(self) -> dict[str, Any]:
        """``images.partial_count``: how many partial images the stream carried."""
        return {"images.partial_count": self._partials}

    def result(self) -> dict[str, Any] | None:
        """The ``ImagesResponse`` rebuilt from the events seen so far."""
        if not self._images and not self._partials:
            return {"error": self._error} if self._error is not None else None
        result: dict[str, Any] = {"created": self._created, "data": list(self._images)}
        result.update(self._settings)
        if self._usage is not None:
            result["usage"] = self._usage
        if self._error is not None:
            result["error"] = self._error
        return result
