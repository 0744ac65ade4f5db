"""An aiohttp response's body as the caller reads it, shown to the recorder.

The response's ``content`` (a ``StreamReader``) is replaced by :class:`ObservedContent`, which
hands every read on unchanged after showing it to the recorder. A response read to its end
ends its span; one released or closed before its end, or dropped, ends it with what was read,
as a ``TracedClient``'s stream does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

from tracer.transport import _Watched

__all__ = ["ObservedContent"]


class ObservedContent(_Watched):
    """An aiohttp response's ``content`` (a ``StreamReader``): every read is handed on
    unchanged after the recorder has seen it; anything else goes to the reader itself."""

    def _seen(self, data: bytes) -> bytes:
        recorder = self._recorder
        if data:
            recorder.on_chunk(data)
        if self._inner.at_eof():
            self._finalizer.detach()
            recorder.on_eof()
        return data

    async def _reading(self, reading: Awaitable[bytes]) -> bytes:
        try:
            data = await reading
        except BaseException as exc:
            self._recorder.on_error(exc)
            raise
        return self._seen(data)

    async def read(self, n: int = -1) -> bytes:
        """``StreamReader.read``, observed."""
        return await self._reading(self._inner.read(n))

    async def readany(self) -> bytes:
        """``StreamReader.readany``, observed."""
        return await self._reading(self._inner.readany())

    async def readline(self) -> bytes:
        """``StreamReader.readline``, observed."""
        return await self._reading(self._inner.readline())

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """``StreamReader.readuntil``, observed."""
        return await self._reading(self._inner.readuntil(separator))

    async def readexactly(self, n: int) -> bytes:
        """``StreamReader.readexactly``, observed."""
        return await self._reading(self._inner.readexactly(n))

    async def readchunk(self) -> tuple[bytes, bool]:
        """``StreamReader.readchunk``, observed."""
        try:
            data, end_of_chunk = await self._inner.readchunk()
        except BaseException as exc:
            self._recorder.on_error(exc)
            raise
        return self._seen(data), end_of_chunk

    def read_nowait(self, n: int = -1) -> bytes:
        """``StreamReader.read_nowait``, observed."""
        return self._seen(self._inner.read_nowait(n))

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """``StreamReader.iter_chunked``, observed."""
        while data := await self.read(n):
            yield data

    async def iter_any(self) -> AsyncIterator[bytes]:
        """``StreamReader.iter_any``, observed."""
        while data := await self.readany():
            yield data

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        """``StreamReader.iter_chunks``, observed."""
        while True:
            data, end_of_chunk = await self.readchunk()
            if not data and not end_of_chunk:
                return
            yield data, end_of_chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        while line := await self.readline():
            yield line

    def set_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp sets one when the response is released or closed before its end: the span
        ends there, with what was read."""
        try:
            self._inner.set_exception(*args, **kwargs)
        finally:
            self._closed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
