"""OpenAI image generation (``POST .../images/generations``): real, small PNG images of one
colour drawn from the prompt, as ``b64_json`` or as a URL this server serves.

Models behave like their namesakes: ``dall-e-2`` (the default) and ``dall-e-3`` answer URLs by
default (``response_format``), ``dall-e-3`` revises the prompt and makes one image per request;
GPT image models (``gpt-image-*``) always answer ``b64_json`` with ``usage``, the settings used
(``size``, ``quality``, ``output_format``, ``background``) and can stream
(``image_generation.partial_image`` / ``image_generation.completed`` events, ``n=1`` only).
Only ``png`` output is rendered.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

from llm_devserver import azure
from llm_devserver.common import (
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    count_tokens,
    event_frame,
)

__all__ = ["FILE_PATH", "STREAM_ERROR_MESSAGE", "image_file", "images_reply", "png"]

DEFAULT_MODEL = "dall-e-2"
MAX_IMAGES = 10
MAX_SIDE = 2048
#: Where ``response_format: url`` images are served (``GET``).
FILE_PATH = re.compile(r"/v1/images/files/img-(\d{1,4})x(\d{1,4})-([0-9a-f]{6})\.png")
_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image": ("auto", "1024x1024", "1536x1024", "1024x1536"),
}
#: GPT image output tokens per image, by quality, for square and for other sizes.
_OUTPUT_TOKENS = {"low": (272, 408), "medium": (1056, 1584), "high": (4160, 6240)}
STREAM_ERROR_MESSAGE = "The server had an error while generating the image."


def _family(model: str) -> str:
    if model.startswith("gpt-image"):
        return "gpt-image"
    return model if model in _SIZES else "other"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


@functools.lru_cache(maxsize=32)
def png(width: int, height: int, rgb: bytes, transparent: bool = False) -> bytes:
    """A valid ``width`` x ``height`` PNG of one colour (fully transparent if asked)."""
    pixel = rgb + b"\x00" if transparent else rgb
    row = b"\x00" + pixel * width  # filter type 0, then the pixels
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if transparent else 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", b"".join(parts)),
            _png_chunk(b"IEND", b""),
        )
    )


def image_file(path: str) -> bytes | None:
    """The PNG a ``response_format: url`` image's URL names, or ``None``."""
    found = FILE_PATH.fullmatch(path)
    if found is None:
        return None
    width, height = int(found.group(1)), int(found.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        return None
    return png(width, height, bytes.fromhex(found.group(3)))


def _colour(prompt: str, index: int) -> bytes:
    return hashlib.sha256(f"{index}:{prompt}".encode()).digest()[:3]


def _size(request: dict[str, Any], family: str) -> tuple[str, int, int]:
    size = request.get("size")
    if size is None or size == "auto":
        size = "1024x1024"
    allowed = _SIZES.get(family)
    found = re.fullmatch(r"(\d{1,4})x(\d{1,4})", size) if isinstance(size, str) else None
    if (
        found is None
        or (allowed is not None and size not in allowed)
        or not all(1 <= int(side) <= MAX_SIDE for side in found.groups())
    ):
        sizes = ", ".join(allowed or ("WIDTHxHEIGHT",))
        raise ApiError(f"Invalid size {size!r}. Supported sizes are {sizes}.", param="size")
    return size, int(found.group(1)), int(found.group(2))


def images_reply(
    request: dict[str, Any],
    ctl: Controls,
    *,
    origin: str,
    model: str | None = None,
    azure_style: bool = False,
) -> Reply:
    """Answer an image-generation request; ``origin`` (``http://host:port``) prefixes image
    URLs; ``model`` overrides the body's (Azure)."""
    del ctl  # no control header shapes an image (errors and streams are handled by the server)
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ApiError("Missing required parameter: 'prompt'.", param="prompt")
    if model is None:
        model = request.get("model") or DEFAULT_MODEL
        if not isinstance(model, str):
            raise ApiError("Invalid type for 'model': expected a string.", param="model")
    family = _family(model)
    n = request.get("n")
    n = 1 if n is None else n
    limit = 1 if family == "dall-e-3" else MAX_IMAGES
    if as_int(n) is None or not 1 <= n <= limit:
        raise ApiError(
            f"Invalid 'n': expected an integer between 1 and {limit}, but got {n!r} instead.",
            param="n",
        )
    size, width, height = _size(request, family)
    gpt_image = family == "gpt-image"
    response_format = request.get("response_format") or ("b64_json" if gpt_image else "url")
    if response_format not in ("url", "b64_json"):
        raise ApiError(
            f"{response_format!r} is not one of ['url', 'b64_json'] - 'response_format'",
            param="response_format",
        )
    if gpt_image and response_format == "url":
        raise ApiError(
            f"response_format 'url' is not supported for model '{model}'.",
            param="response_format",
        )
    output_format = request.get("output_format") or "png"
    if output_format != "png":
        raise ApiError(
            f"The dev server only renders png, not {output_format!r}.", param="output_format"
        )
    stream = request.get("stream") is True
    if stream and not gpt_image:
        raise ApiError(f"Streaming is not supported for model '{model}'.", param="stream")
    if stream and n != 1:
        raise ApiError("Streaming image generation supports only n=1.", param="n")
    transparent = gpt_image and request.get("background") == "transparent"
    quality = request.get("quality")
    if gpt_image and quality in (None, "auto"):
        quality = "medium"
    created = int(time.time())
    settings: dict[str, Any] = {}
    usage: dict[str, Any] | None = None
    if gpt_image:
        settings = {
            "background": "transparent" if transparent else "opaque",
            "output_format": output_format,
            "quality": quality,
            "size": size,
        }
        per_image = _OUTPUT_TOKENS.get(str(quality), _OUTPUT_TOKENS["medium"])
        output_tokens = per_image[0 if width == height else 1] * n
        input_tokens = count_tokens(prompt)
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": input_tokens},
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }

    def encoded(rgb: bytes) -> str:
        return base64.b64encode(png(width, height, rgb, transparent)).decode("ascii")

    if stream:
        assert usage is not None
        return _stream(prompt, request, settings, usage, created, encoded)

    data: list[dict[str, Any]] = []
    for index in range(n):
        rgb = _colour(prompt, index)
        item: dict[str, Any] = {}
        if azure_style:
            item["content_filter_results"] = azure.image_filter_results()
            item["prompt_filter_results"] = azure.image_filter_results(jailbreak=True)
        if response_format == "url":
            item["url"] = f"{origin}/v1/images/files/img-{width}x{height}-{rgb.hex()}.png"
        else:
            item["b64_json"] = encoded(rgb)
        if family == "dall-e-3":
            item["revised_prompt"] = f"{prompt.rstrip('. ')}, rendered as one flat colour."
        data.append(item)
    payload: dict[str, Any] = {"created": created, **settings, "data": data}
    if usage is not None:
        payload["usage"] = usage
    return JsonReply(payload)


def _stream(
    prompt: str,
    request: dict[str, Any],
    settings: dict[str, Any],
    usage: dict[str, Any],
    created: int,
    encoded: Callable[[bytes], str],
) -> StreamReply:
    partials = request.get("partial_images")
    partials = 0 if partials is None else partials
    if as_int(partials) is None or not 0 <= partials <= 3:
        raise ApiError(
            f"Invalid 'partial_images': expected an integer between 0 and 3, got {partials!r}.",
            param="partial_images",
        )
    final = _colour(prompt, 0)
    frames: list[bytes] = []
    for index in range(partials):
        # each partial image a step closer to the final colour
        rgb = bytes(c * (index + 1) // (partials + 1) for c in final)
        kind = "image_generation.partial_image"
        event = {"type": kind, "b64_json": encoded(rgb), "created_at": created, **settings}
        frames.append(event_frame(kind, {**event, "partial_image_index": index}))
    kind = "image_generation.completed"
    completed = {"type": kind, "b64_json": encoded(final), "created_at": created, **settings}
    frames.append(event_frame(kind, {**completed, "usage": usage}))

    def error_frame(sent: int) -> bytes:
        del sent
        error = {
            "type": "server_error",
            "code": "server_error",
            "message": STREAM_ERROR_MESSAGE,
            "param": None,
        }
        return event_frame("error", {"type": "error", "error": error})

    return StreamReply(frames, error_frame)
