"""What a span keeps when content capture is off: an allow-list per API, as shapes.

With ``TRACER_CAPTURE_CONTENT=false`` a request or response is reduced to the fields its API's
shape lists, and everything else is dropped, whatever its name: a field a future API version
adds is content until its shape says otherwise. A shape is

- a ``dict`` of field name to shape: an object, of which only those fields are kept;
- a one-item ``list``: an array, each item reduced by that shape;
- a leaf: :data:`TEXT` (any string: a model, an id, a tool's name), :data:`NUMBER`,
  :data:`FLAG`, :data:`NUMERIC` (a number, or a form field's string of one), :func:`one_of`
  (a string only if it is one of the values the API documents, so
  free text in an enumerated field is not kept), :data:`KIND` (a lower-case identifier such as
  ``web_search_20250305``, for type fields whose values grow with every release),
  :data:`MESSAGE` (an error message, with every quoted value in it removed), :data:`COUNTS`
  (an object of numbers, such as ``usage``: only its numbers, at any depth), or
  :func:`either` of several shapes.

:func:`paths` lists a shape's fields as dotted paths (``choices[].finish_reason``);
``docs/configuration.md`` lists the same paths per API, and a test keeps the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COUNTS",
    "ERROR",
    "FLAG",
    "KIND",
    "MESSAGE",
    "NUMBER",
    "NUMERIC",
    "PROMPT_CACHE_RETENTION",
    "REASONING_EFFORT",
    "SAMPLING",
    "SERVICE_TIER",
    "TEXT",
    "VERBOSITY",
    "VOICE",
    "Shape",
    "either",
    "keep",
    "one_of",
    "paths",
    "without_quotes",
]


@dataclass(frozen=True, slots=True)
class _Leaf:
    kind: str
    values: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Either:
    shapes: tuple[Any, ...]


Shape = dict[str, Any] | list[Any] | _Leaf | _Either

TEXT = _Leaf("text")
"""Any string: models, ids, tool names, statuses and finish reasons."""
NUMBER = _Leaf("number")
"""An int or a float (not a boolean)."""
FLAG = _Leaf("flag")
"""A boolean."""
COUNTS = _Leaf("counts")
"""An object whose numbers are kept at any depth (``usage`` and its details); its strings are
not."""
NUMERIC = _Leaf("numeric")
"""A number, or a string that is one (a form field: ``"0.2"``)."""
KIND = _Leaf("kind")
"""A lower-case identifier (letters, digits, ``_``; 64 characters at most): the ``type`` of a
tool, whose set of values grows with every release (``web_search_20250305``)."""
MESSAGE = _Leaf("message")
"""An error message, kept with every quoted value in it removed (:func:`without_quotes`): APIs
quote the offending request value in their messages."""

_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_NUMERIC = re.compile(r"-?\d{1,12}(?:\.\d{1,12})?")
# Straight, back and typographic quotes (written as escapes: they look alike).
_QUOTED = re.compile("'[^']*'|\"[^\"]*\"|`[^`]*`|\u2018[^\u2019]*\u2019|\u201c[^\u201d]*\u201d")


def without_quotes(message: str) -> str:
    """``message`` with each quoted part (``'...'``, ``"..."``, a backquoted one) replaced by
    ``'…'``: ``'xyz' is not one of ['float', 'base64']`` becomes
    ``'…' is not one of ['…', '…']``."""
    return _QUOTED.sub("'…'", message)


def one_of(*values: str) -> _Leaf:
    """A string kept only when it is one of ``values``."""
    return _Leaf("enum", frozenset(values))


def either(*shapes: Any) -> _Either:
    """A value that may take any of ``shapes`` (the first that fits its JSON type is used)."""
    return _Either(shapes)


#: The error object of OpenAI-style and Anthropic error bodies.
ERROR = {"message": MESSAGE, "type": TEXT, "code": either(TEXT, NUMBER), "param": TEXT}
#: Sampling and length parameters most APIs share.
SAMPLING = {
    "model": TEXT,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "top_k": NUMBER,
    "n": NUMBER,
    "seed": NUMBER,
    "frequency_penalty": NUMBER,
    "presence_penalty": NUMBER,
    "max_tokens": NUMBER,
    "stream": FLAG,
}
#: OpenAI's enumerated settings, each with the values the API documents.
SERVICE_TIER = one_of("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")
REASONING_EFFORT = one_of("none", "minimal", "low", "medium", "high", "xhigh", "max")
PROMPT_CACHE_RETENTION = one_of("in_memory", "in-memory", "24h")
VERBOSITY = one_of("low", "medium", "high")
#: The built-in voices of chat audio and speech.
VOICE = one_of(
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "fable",
    "marin",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)

_DROP = object()


#: ``usage`` nests two or three levels; deeper is not counts (and must not exhaust the stack).
_COUNTS_DEPTH = 8


def _counts(value: Any, depth: int = 0) -> Any:
    if isinstance(value, (int, float)):
        return value
    if depth >= _COUNTS_DEPTH:
        return _DROP
    if isinstance(value, dict):
        found = {k: _counts(v, depth + 1) for k, v in value.items()}
        kept: dict[str, Any] | list[Any] = {k: v for k, v in found.items() if v is not _DROP}
    elif isinstance(value, list):
        kept = [v for v in (_counts(v, depth + 1) for v in value) if v is not _DROP]
    else:
        return _DROP
    return kept if kept or not value else _DROP  # an object of no numbers is not counts


def _fits(shape: Any, value: Any) -> bool:
    if isinstance(shape, dict):
        return isinstance(value, dict)
    if isinstance(shape, list):
        return isinstance(value, list)
    if isinstance(shape, _Either):
        return any(_fits(s, value) for s in shape.shapes)
    kind = shape.kind
    if kind in ("text", "enum", "kind", "message"):
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "numeric":
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and _NUMERIC.fullmatch(value) is not None
        )
    if kind == "flag":
        return isinstance(value, bool)
    return isinstance(value, (dict, list, int, float))  # counts


def _keep(value: Any, shape: Any) -> Any:
    if isinstance(shape, _Either):
        for option in shape.shapes:
            if _fits(option, value):
                return _keep(value, option)
        return _DROP
    if not _fits(shape, value):
        return _DROP
    if isinstance(shape, dict):
        kept = {}
        for key, item in value.items():
            if key in shape:
                reduced = _keep(item, shape[key])
                if reduced is not _DROP:
                    kept[key] = reduced
        return kept
    if isinstance(shape, list):
        return [v for v in (_keep(item, shape[0]) for item in value) if v is not _DROP]
    if shape.kind == "enum" and value not in shape.values:
        return _DROP
    if shape.kind == "kind" and not _KIND.fullmatch(value):
        return _DROP
    if shape.kind == "message":
        return without_quotes(value)
    if shape.kind == "counts":
        return _counts(value)
    return value


def keep(value: Any, shape: Shape) -> Any:
    """``value`` reduced to what ``shape`` allows (a new object); ``None`` when nothing of it
    is allowed."""
    reduced = _keep(value, shape)
    return None if reduced is _DROP else reduced


def paths(shape: Shape, prefix: str = "") -> list[str]:
    """Every field ``shape`` keeps, as a dotted path (``tools[].function.name``); an object
    that may also be a plain value (``tool_choice``) is listed itself and by its fields."""
    if isinstance(shape, _Either):
        found: list[str] = []
        for option in shape.shapes:
            found += [p for p in paths(option, prefix) if p not in found]
        return found
    if isinstance(shape, dict):
        if not shape:  # an object kept empty: how many there were
            return [prefix]
        found = []
        for key, item in shape.items():
            found += paths(item, f"{prefix}.{key}" if prefix else key)
        return found
    if isinstance(shape, list):
        return paths(shape[0], f"{prefix}[]")
    return [prefix]
