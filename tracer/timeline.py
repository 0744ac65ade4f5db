"""A stream's timeline as span events (``TRACER_CHUNK_EVENTS``), for someone debugging a stall.

- ``summary``: a bounded summary whatever the stream's length: ``stream.first_chunk``,
  ``stream.last_chunk`` and the :data:`LONGEST_GAPS` longest waits between two chunks
  (``stream.gap``), each at the moment it happened, with its offset from the request;
- ``all``: one event per stream event, as ``mlflow.openai.autolog()`` records them
  (``mlflow.chunk.item.<index>`` with the event's data in ``mlflow.chunk.value``), each at the
  moment the chunk that completed it arrived; the values stop once they hold
  ``TRACER_MAX_BODY_BYTES``, and are left out with content capture off or a ``redact`` function.

Only times are taken on the caller's thread (a clock read per chunk); the events are built
when the span ends.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import deque
from typing import Any

from tracer import redact

__all__ = ["LONGEST_GAPS", "ChunkTimeline", "Event"]

#: How many of the longest gaps between chunks the summary keeps.
LONGEST_GAPS = 5
#: A field whose name may make it a credential (see :data:`tracer.redact.SECRET_FIELDS`).
_SECRET_NAMES = re.compile(r"auth|key|secret|password|passwd|token|cookie", re.IGNORECASE)
#: (name, time in nanoseconds since the epoch, attributes)
Event = tuple[str, int, dict[str, Any]]


class ChunkTimeline:
    """Collects a stream's chunk times (and, for ``all``, its events' data)."""

    __slots__ = (
        "_budget",
        "_count",
        "_current",
        "_epoch",
        "_events",
        "_first",
        "_gaps",
        "_last",
        "_media",
        "_mode",
        "_queue",
        "_started",
        "_values",
        "truncated",
    )

    def __init__(
        self,
        mode: str,
        started_ns: int,
        epoch_ns: int,
        *,
        max_bytes: int,
        values: bool,
        media: bool,
    ) -> None:
        self._mode = mode
        self._started = started_ns  # perf_counter_ns when the request was sent
        self._epoch = epoch_ns  # time_ns at the same moment
        self._first: int | None = None
        self._last: int | None = None
        self._count = 0
        self._gaps: list[tuple[int, int]] = []  # min-heap of (gap, at)
        self._queue: deque[int] = deque()  # ``all``: arrival times of chunks not parsed yet
        self._current = 0
        self._events: list[tuple[int, str]] = []
        self._budget = max_bytes
        self._values = values
        self._media = media
        self.truncated = False

    def chunk(self, now: int) -> None:
        """A chunk arrived at ``now`` (``perf_counter_ns``)."""
        if self._last is not None:
            gap = (now - self._last, now)
            if len(self._gaps) < LONGEST_GAPS:
                heapq.heappush(self._gaps, gap)
            elif gap > self._gaps[0]:
                heapq.heapreplace(self._gaps, gap)
        else:
            self._first = now
        self._last = now
        self._count += 1
        if self._mode == "all":
            self._queue.append(now)

    def parsing(self) -> None:
        """The next chunk (in arrival order) is being parsed: its events happened then."""
        if self._queue:
            self._current = self._queue.popleft()

    def event(self, data: str) -> None:
        """A data event was parsed (``all`` only)."""
        if self._mode != "all" or self.truncated:
            return
        if self._values:
            self._budget -= len(data)
            if self._budget < 0:
                self.truncated = True
                return
        # Without values only the time is kept: nothing of the content stays in memory.
        self._events.append(
            (self._current or self._last or self._started, data if self._values else "")
        )

    def _at(self, perf_ns: int) -> int:
        return self._epoch + (perf_ns - self._started)

    def _offset_ms(self, perf_ns: int) -> float:
        return round((perf_ns - self._started) / 1e6, 3)

    def _value(self, data: str) -> str:
        """An event's data as it may be recorded: what the outputs would mask is masked (a
        field named as a credential, inline media); a plain delta skips the JSON round."""
        if (not self._media and len(data) >= redact.MEDIA_MIN_CHARS) or _SECRET_NAMES.search(data):
            try:
                scrubbed = redact.scrub(json.loads(data), media=not self._media)
                return json.dumps(scrubbed, ensure_ascii=False)
            except ValueError:
                pass
        return redact.mask_urls(data)

    def events(self) -> list[Event]:
        """The span events, oldest first."""
        if self._mode == "all":
            return [
                (
                    f"mlflow.chunk.item.{index}",
                    self._at(at),
                    {"mlflow.chunk.value": self._value(data)} if self._values else {},
                )
                for index, (at, data) in enumerate(self._events)
            ]
        if self._first is None or self._last is None:
            return []
        found: list[Event] = [
            (
                "stream.first_chunk",
                self._at(self._first),
                {"stream.offset_ms": self._offset_ms(self._first)},
            )
        ]
        for gap, at in sorted(self._gaps, key=lambda item: item[1]):
            found.append(
                (
                    "stream.gap",
                    self._at(at),
                    {"stream.gap_ms": round(gap / 1e6, 3), "stream.offset_ms": self._offset_ms(at)},
                )
            )
        found.append(
            (
                "stream.last_chunk",
                self._at(self._last),
                {"stream.offset_ms": self._offset_ms(self._last), "stream.chunks": self._count},
            )
        )
        return found
