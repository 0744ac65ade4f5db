"""``aiohttp`` under :func:`tracer.instrument`: a client middleware on each POST to an LLM route.

aiohttp's client middlewares (aiohttp 3.12+) are its public way to see each request and its
response. ``ClientSession._request``, through which every request of a session goes, is
wrapped only to add the tracer's middleware after the session's own (so it sees the request
as sent, and each attempt of a retrying middleware) to a POST whose path a route matches;
sessions built before :func:`tracer.instrument` are reached too. Any other request goes
straight on, without the middleware.

The body of an LLM response is seen as the caller reads it: the response's ``content`` (the
``StreamReader`` the caller reads) is replaced by
:class:`~tracer._aiohttp_content.ObservedContent`. Nothing here imports MLflow until a
route matches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from tracer import cassettes, nesting, routes
from tracer.config import TracerConfig
from tracer.failsafe import internal_error

__all__ = ["replacements"]


def _not_instrumented() -> TracerConfig | None:
    return None


#: The configuration in use while instrumented, else ``None``: :mod:`tracer.instrumentation`,
#: the layer above, hands its reader to :func:`replacements`.
_current_config: Callable[[], TracerConfig | None] = _not_instrumented


def replacements(
    module: ModuleType, current_config: Callable[[], TracerConfig | None]
) -> list[tuple[type, str, Callable[[Any], Any]]]:
    """What :func:`tracer.instrument` replaces in ``aiohttp``; ``current_config`` tells the
    configuration in use (``None`` once uninstrumented)."""
    global _current_config
    if not hasattr(module, "ClientMiddlewareType"):
        raise RuntimeError("client middlewares are needed (aiohttp 3.12 or later)")
    _current_config = current_config
    return [(module.ClientSession, "_request", _request_with_middleware)]


def _request_with_middleware(original: Callable[..., Any]) -> Callable[..., Any]:
    def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        if (
            isinstance(method, str)
            and method.upper() == "POST"
            and _may_be_llm_call(self, str_or_url, _current_config())
        ):
            own: Any = kwargs.get("middlewares")
            if own is None:
                own = getattr(self, "_middlewares", ())
            decompressed = kwargs.get("auto_decompress")
            if decompressed is None:
                decompressed = getattr(self, "_auto_decompress", True)
            kwargs["middlewares"] = (*own, _MIDDLEWARES[bool(decompressed)])
        return original(self, method, str_or_url, **kwargs)

    _request.__wrapped__ = original  # type: ignore[attr-defined]
    _request.__doc__ = original.__doc__
    return _request


def _may_be_llm_call(session: Any, str_or_url: Any, config: TracerConfig | None) -> bool:
    """Whether a POST to ``str_or_url`` may be an LLM call: then it gets the middleware, which
    checks each attempt (also when the URL cannot be told here). A POST redirected from another
    path to an LLM route is not traced."""
    if config is None or not config.enabled:
        return False
    try:
        url = session._build_url(str_or_url)  # the session's own join with its base_url
        return routes.match("POST", url.path, config.routes) is not None
    except Exception:
        return True


Handler = Callable[[Any], Awaitable[Any]]


def _middleware(decompressed: bool) -> Callable[[Any, Handler], Awaitable[Any]]:
    async def tracer_middleware(request: Any, handler: Handler) -> Any:
        config = _current_config()
        route = _route(request, config)
        if route is None or config is None:
            return await handler(request)
        tape = cassettes.current()
        if tape is not None:
            tape.cannot_take("an aiohttp session", request.method, str(request.url))
        recorder = await _begin(request, route, config)
        if recorder is None:
            return await handler(request)
        token = nesting.enter()
        try:
            response = await handler(request)
        except BaseException as exc:
            recorder.on_error(exc)
            raise
        finally:
            nesting.leave(token)
        _observe(response, recorder, decompressed)
        return response

    return tracer_middleware


#: The tracer's middleware for sessions that decompress bodies (the default) and for those
#: that hand them on compressed (the span then decodes them).
_MIDDLEWARES = (_middleware(False), _middleware(True))


def _route(request: Any, config: TracerConfig | None) -> routes.RouteMatch | None:
    if config is None or not config.enabled or nesting.inside():
        return None
    try:
        return routes.match(request.method, request.url.path, config.routes)
    except Exception as exc:
        internal_error("routing a request", exc, strict=config.strict)
        return None


async def _begin(request: Any, route: routes.RouteMatch, config: TracerConfig) -> Any:
    from aiohttp.payload import BytesPayload

    from tracer.recorder import RequestInfo
    from tracer.transport import begin_recording

    try:
        payload = request.body
        body: bytes | None = None
        if isinstance(payload, BytesPayload):  # JSON and bytes bodies; not files or forms
            body = await payload.as_bytes()
        elif isinstance(payload, (bytes, bytearray)):
            body = bytes(payload)
        url = request.url
        info = RequestInfo(
            request.method,
            str(url),
            url.host or "",
            url.explicit_port,
            request.headers,
            body,
            url.path,
        )
    except Exception as exc:
        internal_error("reading an aiohttp request", exc, strict=config.strict)
        return None
    return begin_recording(route, info, config, request.headers)


def _observe(response: Any, recorder: Any, decompressed: bool) -> None:
    import httpx

    from tracer._aiohttp_content import ObservedContent
    from tracer.transport import HTTPX

    try:
        decoder = None
        if not decompressed:  # the caller reads the bytes as sent: the span decodes them
            decoder = HTTPX.decoder_factory(httpx.Headers(list(response.headers.items())))
        recorder.on_response(response.status, response.headers, decoder)
        response.content = ObservedContent(response.content, recorder)
    except Exception as exc:
        internal_error("observing a response", exc, strict=recorder.config.strict)
