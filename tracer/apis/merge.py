"""The one rule by which streamed pieces of an object are merged back into it.

Every API that streams deltas (chat completion ``delta``s, legacy completion choices,
Anthropic content blocks) merges them with :class:`Merged`:

- strings are joined (``content``, ``reasoning_content``, ``audio.transcript``, a tool call's
  ``arguments``), except identifying fields (:data:`IDENTITY_KEYS`: ``id``, ``type``, ``role``,
  ``name``, ...), which keep their first non-empty value, since servers repeat them;
- objects are merged field by field, by the same rule (``audio``, ``function_call``, any
  nested field no one has invented yet);
- lists whose items carry an integer ``index`` are merged item by item, by index
  (``tool_calls``; an item of ``tool_calls`` without an index continues the latest one unless
  it brings a new ``id``);
- anything else (numbers, booleans, other lists) keeps its latest value; ``null`` changes
  nothing.

The state holds each string as its pieces, joined every few hundred, so memory grows with the
reassembled text, not with the number of deltas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IDENTITY_KEYS", "INDEXED_KEYS", "Merged"]

#: String fields that name rather than carry content: a repeated value is not joined.
IDENTITY_KEYS = frozenset({"id", "type", "role", "name", "call_id", "object", "model"})
#: List fields merged by index even when a server omits the index.
INDEXED_KEYS = frozenset({"tool_calls"})
#: Pieces held before they are joined.
_PIECES = 256
#: Objects nested deeper than this are not merged but kept whole, as their latest value (no
#: LLM payload nests so deep; a hostile one must not exhaust the stack).
MAX_MERGE_DEPTH = 32


class _Text:
    __slots__ = ("pieces",)

    def __init__(self, text: str) -> None:
        self.pieces = [text]

    def add(self, text: str) -> None:
        pieces = self.pieces
        pieces.append(text)
        if len(pieces) >= _PIECES:
            pieces[:] = ["".join(pieces)]


class _Whole:
    """A value kept as it came (too deeply nested to merge)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Indexed:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}

    def add(self, values: list[Any], depth: int) -> None:
        items = self.items
        for item in values:
            if not isinstance(item, dict):
                continue
            index = item.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                latest = max(items, default=None)
                new_id = item.get("id")
                if latest is None or (new_id and _built(items[latest].get("id")) != new_id):
                    index = (latest if latest is not None else -1) + 1
                else:
                    index = latest
            _merge(items.setdefault(index, {}), item, skip="index", depth=depth + 1)


def _merge(
    state: dict[str, Any],
    delta: dict[str, Any],
    skip: str | None = None,
    base: bool = False,
    depth: int = 0,
) -> None:
    for key, value in delta.items():
        if value is None or key == skip:
            if base and key != skip:  # an initial object's nulls are kept
                state.setdefault(key, None)
            continue
        known = state.get(key)
        if isinstance(value, str):
            if key in IDENTITY_KEYS:
                if not _built(known):
                    state[key] = value
            elif isinstance(known, _Text):
                known.add(value)
            else:
                state[key] = _Text(value)
        elif isinstance(value, (dict, list)) and depth >= MAX_MERGE_DEPTH:
            state[key] = _Whole(value)
        elif isinstance(value, dict):
            if not isinstance(known, dict):
                known = state[key] = {}
            _merge(known, value, base=base, depth=depth + 1)
        elif isinstance(value, list) and (
            isinstance(known, _Indexed)
            or key in INDEXED_KEYS
            or any(isinstance(i, dict) and isinstance(i.get("index"), int) for i in value)
        ):
            if not isinstance(known, _Indexed):
                known = state[key] = _Indexed()
            known.add(value, depth)
        else:
            state[key] = value


def _built(node: Any) -> Any:
    if isinstance(node, _Text):
        return "".join(node.pieces)
    if isinstance(node, dict):
        return {key: _built(value) for key, value in node.items()}
    if isinstance(node, _Indexed):
        return [_built(item) for _, item in sorted(node.items.items())]
    if isinstance(node, _Whole):
        return node.value
    return node


class Merged:
    """An object rebuilt from its streamed deltas, by the rule of this module."""

    __slots__ = ("_state",)

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        """Start from ``initial`` (an object announced whole, such as Anthropic's
        ``content_block_start`` block; its ``null`` fields are kept), or from nothing."""
        self._state: dict[str, Any] = {}
        if initial:
            _merge(self._state, initial, base=True)

    def add(self, delta: dict[str, Any]) -> None:
        """Merge one delta (a JSON object) into the object."""
        _merge(self._state, delta)

    def result(self) -> dict[str, Any]:
        """The object as merged so far (a new dict each time)."""
        built: dict[str, Any] = _built(self._state)
        return built
