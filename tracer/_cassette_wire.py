"""The transports' side of cassettes: answer a request from one, or record what the network
answered into it. The sync and async transports share all of it but the lines that read the
request, wait and send (in :mod:`tracer.transport`).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from tracer import nesting, routes
from tracer._cassette_file import CassetteError, bytes_of, decode_bytes
from tracer.cassettes import Cassette, Recording, current, wanted
from tracer.config import TracerConfig

__all__ = ["in_use", "recording_stream", "replayed_response"]


def in_use(request: Any, config: TracerConfig) -> Cassette | None:
    """The cassette that answers or records ``request``: one is in use, the request is an LLM
    call, and no outer tracing layer has taken it already."""
    if not wanted() or nesting.inside():
        return None
    if routes.match(request.method, request.url.path, config.routes) is None:
        return None  # not an LLM call: not even a broken cassette stands in its way
    return current()


def take(tape: Cassette, request: Any, body: bytes | None, config: TracerConfig) -> Any:
    """The recorded exchange (a dict) or a :class:`~tracer.cassettes.Recording`."""
    return tape.take(request.method, str(request.url), request.headers, body, config.redact)


class _Chunks:
    """A replayed body: the recorded chunks, at their recorded times with ``pace``, then the
    recorded error if the body had broken off."""

    def __init__(self, chunks: list[bytes], times: list[float], pace: bool, error: Any) -> None:
        self._chunks = chunks
        self._times = times
        self._pace = pace
        self._error = error

    def _delays(self) -> Iterator[tuple[bytes, float]]:
        start = time.perf_counter()
        for index, chunk in enumerate(self._chunks):
            delay = 0.0
            if self._pace and index < len(self._times):
                delay = start + self._times[index] / 1000 - time.perf_counter()
            yield chunk, delay

    def __iter__(self) -> Iterator[bytes]:
        for chunk, delay in self._delays():
            if delay > 0:
                time.sleep(delay)
            yield chunk
        if self._error is not None:
            raise self._error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import anyio

        for chunk, delay in self._delays():
            if delay > 0:
                await anyio.sleep(delay)
            yield chunk
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


_stream_classes: dict[tuple[type, str, bool], type] = {}


def _stream_class(body: type, module: Any, asynchronous: bool) -> type:
    """``body`` on the library's own byte stream class (its clients accept only theirs)."""
    key = (body, module.__name__, asynchronous)
    if key not in _stream_classes:
        base = module.AsyncByteStream if asynchronous else module.SyncByteStream
        _stream_classes[key] = type(body.__name__.strip("_"), (body, base), {})
    return _stream_classes[key]


def replayed_response(
    exchange: dict[str, Any], tape: Cassette, request: Any, module: Any, asynchronous: bool
) -> Any:
    """The library's response for a recorded exchange, its body a stream of the recorded
    chunks (or the whole recorded body as one)."""
    recorded = exchange["response"]
    try:
        if "chunks" in recorded:
            chunks = [decode_bytes(chunk) for chunk in recorded["chunks"]]
            times = [float(t) for t in recorded.get("chunk_ms") or []]
        else:
            body = bytes_of(recorded)
            chunks, times = ([body] if body else []), []
    except (ValueError, TypeError) as exc:
        raise CassetteError(f"{tape.path}: a recorded body cannot be replayed ({exc})") from None
    headers = {str(k).lower(): str(v) for k, v in (recorded.get("headers") or {}).items()}
    encodings = [str(e) for e in recorded.get("decoded") or []]
    if encodings:
        encoded = _encoded(chunks, encodings)
        if encoded is None:  # no encoder here for it: the body goes as the SDK read it
            headers.pop("content-encoding", None)
            headers.pop("content-length", None)
        else:
            chunks = encoded
    if "content-length" in headers:
        headers["content-length"] = str(sum(len(chunk) for chunk in chunks))
    error = _broken_off(str(recorded["error"]), request, module) if recorded.get("error") else None
    stream = _stream_class(_Chunks, module, asynchronous)(chunks, times, tape.pace, error)
    return module.Response(
        recorded["status"], headers=list(headers.items()), stream=stream, request=request
    )


def _broken_off(recorded: str, request: Any, module: Any) -> Exception:
    """The error a recorded stream broke off with (``"RemoteProtocolError: ..."``): the
    library's exception of that name, else its ``ReadError``."""
    name, _, message = recorded.partition(": ")
    kind = getattr(module, name, None)
    if not (isinstance(kind, type) and issubclass(kind, module.TransportError)):
        kind, message = module.ReadError, recorded
    return kind(message, request=request)  # type: ignore[no-any-return]


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)

    def chunk(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        return self._compressor.flush(zlib.Z_FINISH)


class _Brotli:
    def __init__(self) -> None:
        brotli: Any
        try:
            import brotli  # type: ignore[import-untyped,no-redef]
        except ImportError:
            import brotlicffi as brotli  # type: ignore[import-not-found,no-redef]
        self._compressor = brotli.Compressor()
        self._process = getattr(self._compressor, "process", None) or self._compressor.compress

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._process(data)) + bytes(self._compressor.flush())

    def end(self) -> bytes:
        return bytes(self._compressor.finish())


class _Zstd:
    def __init__(self) -> None:
        import zstandard

        self._flush_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        self._compressor = zstandard.ZstdCompressor().compressobj()

    def chunk(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(self._flush_block)

    def end(self) -> bytes:
        return self._compressor.flush()


_ENCODERS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: _Zlib(31),
    "deflate": lambda: _Zlib(15),
    "br": _Brotli,
    "zstd": _Zstd,
}


def _encoded(chunks: list[bytes], encodings: list[str]) -> list[bytes] | None:
    """``chunks`` encoded again as the server sent them, each piece flushed so that the SDK's
    decoder gives back exactly that chunk; ``None`` when an encoder is missing here."""
    for encoding in encodings:  # in the order the server applied them
        try:
            encoder = _ENCODERS[encoding]()
        except (KeyError, ImportError):
            return None
        pieces = [encoder.chunk(chunk) for chunk in chunks] or [b""]
        pieces[-1] += encoder.end()
        chunks = pieces
    return chunks


def head_delay(exchange: dict[str, Any], tape: Cassette) -> float:
    """How long to wait before the response head, in seconds (with ``pace`` only)."""
    if not tape.pace:
        return 0.0
    try:
        return max(0.0, float(exchange.get("head_ms") or 0) / 1000)
    except (TypeError, ValueError):
        return 0.0


class _Recorded:
    """The response body as it goes to the caller, shown to the recording on the way."""

    def __init__(self, inner: Any, recording: Recording) -> None:
        self._inner = inner
        self._recording = recording

    def __iter__(self) -> Iterator[bytes]:
        recording = self._recording
        try:
            for chunk in self._inner:
                recording.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except Exception as exc:
            recording.on_error(exc)
            raise
        recording.finish()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        recording = self._recording
        try:
            async for chunk in self._inner:
                recording.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except Exception as exc:
            recording.on_error(exc)
            raise
        recording.finish()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._recording.finish()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._recording.finish()


def recording_stream(response: Any, recording: Recording, library: Any, asynchronous: bool) -> Any:
    """``response`` with its body shown to ``recording`` as the caller reads it."""
    if response.is_stream_consumed:  # built with its content already read (mocks): decoded
        recording.on_response(response.status_code, response.headers, None)
        recording.on_chunk(response.content)
        recording.finish()
        return response
    decoder = library.decoder_factory(response.headers)
    decoded = None
    if decoder is not None:
        decoded = [
            value.strip().lower()
            for value in response.headers.get_list("content-encoding", split_commas=True)
            if value.strip().lower() in library.supported_encodings
            and value.strip().lower() != "identity"
        ]
    recording.on_response(
        response.status_code,
        response.headers,
        decoder() if decoder is not None else None,
        decoded,
    )
    response.stream = _stream_class(_Recorded, library.module, asynchronous)(
        response.stream, recording
    )
    return response
