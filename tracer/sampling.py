"""Keep-by-outcome sampling of root LLM spans (``TRACER_SAMPLE``).

MLflow's ``MLFLOW_TRACE_SAMPLING_RATIO`` decides before a call. The tracer holds a root LLM
span until its call has ended, so it can decide on the outcome instead: keep every call that
failed, took longer than a threshold or used more tokens than a limit, and a ratio of the
rest::

    TRACER_SAMPLE="ratio=0.1,slower_than=2s,tokens_over=4000"   # errors are kept by default

A kept span says why (``tracer.sample.reason``: ``error``, ``slow``, ``tokens`` or
``ratio``) and at what ratio the rest was kept (``tracer.sample.ratio``), so counts can be
weighed back. What was left out is counted (:func:`tracer.export.stats`), never silent. A span
with a parent follows its trace (the tracer does not drop part of a trace), and MLflow's own
ratio still applies to what is kept.
"""

from __future__ import annotations

import random
import re
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SampleRule", "count_left_out", "left_out"]

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*$")
_KEYS = {"ratio", "errors", "slower_than", "slower_than_ms", "tokens_over"}


def _milliseconds(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"slower_than={text!r} is not a duration such as 2s or 500ms")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number if unit == "ms" else number * 1000


class SampleRule(BaseModel):
    """Which root LLM spans are kept: every error (``errors``), every call slower than
    ``slower_than_ms``, every call with more than ``tokens_over`` tokens in all, and a
    ``ratio`` of the rest. Also written as text: ``"ratio=0.1,slower_than=2s,tokens_over=4000,
    errors=true"`` (``TRACER_SAMPLE``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    errors: bool = True
    slower_than_ms: float | None = Field(default=None, ge=0.0)
    tokens_over: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        fields: dict[str, Any] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, raw = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in _KEYS:
                raise ValueError(
                    f"{part.strip()!r} is not one of ratio=, errors=, slower_than=, tokens_over="
                )
            if key in ("slower_than", "slower_than_ms"):
                fields["slower_than_ms"] = (
                    _milliseconds(raw) if key == "slower_than" else float(raw)
                )
            else:
                fields[key] = raw.strip()
        return fields

    def decide(self, *, failed: bool, duration_ms: float, tokens: int | None) -> str | None:
        """Why the span is kept (``error``, ``slow``, ``tokens``, ``ratio``), or ``None``:
        it is left out."""
        if failed and self.errors:
            return "error"
        if self.slower_than_ms is not None and duration_ms > self.slower_than_ms:
            return "slow"
        if self.tokens_over is not None and tokens is not None and tokens > self.tokens_over:
            return "tokens"
        if self.ratio >= 1.0 or random.random() < self.ratio:
            return "ratio"
        return None


_lock = threading.Lock()
_left_out = 0


def count_left_out() -> None:
    """One more root LLM span left out by its rule."""
    global _left_out
    with _lock:
        _left_out += 1


def left_out() -> int:
    """How many root LLM spans sampling has left out in this process."""
    return _left_out
