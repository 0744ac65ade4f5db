"""One line for every HTTP client of the process: :func:`instrument` and :func:`uninstrument`.

SDKs and frameworks build their own HTTP clients (LangChain, LiteLLM, the OpenAI Agents SDK,
google-genai), often with no way to pass one in, but they all meet at the HTTP client. So
:func:`instrument` patches the HTTP clients, never an SDK:

- ``httpx`` and ``httpx2``: ``Client._transport_for_url`` and ``AsyncClient._transport_for_url``,
  the one method through which a client picks the transport of each request (its default
  transport, a proxy's, a ``mounts=`` entry, whatever transport the SDK passed in). The
  transport it picks is handed back behind a *gate*: a request that no route matches goes
  straight to the transport, untouched; an LLM call goes through a
  :class:`~tracer.TracingTransport` around it, exactly as in a ``TracedClient``. Clients
  built before the call are reached as well as those built after.
- ``aiohttp``: ``ClientSession._request`` adds one client middleware (aiohttp's public
  extension point, aiohttp 3.12+) to each POST to an LLM route; see :mod:`tracer._aiohttp`.

A library imported after :func:`instrument` is patched when it is imported (an import hook on
``sys.meta_path``), so ``llm-tracer run`` costs a program that makes no LLM call neither
MLflow's import nor the libraries'. The hook also watches MLflow: once it is imported, MLflow's
autologs of the SDKs are settled as a ``TracedClient`` settles them.

A call that crosses a client already traced (``TracedClient``, :func:`~tracer.wrap`) is
recorded once (see :mod:`tracer.nesting`).

:func:`uninstrument` puts back the original methods and removes the hook; responses still
being read finish their spans.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tracer.failsafe import internal_error, warn_once

if TYPE_CHECKING:
    from tracer.config import TracerConfig

__all__ = ["LIBRARIES", "current_config", "instrument", "instrumented", "uninstrument"]

#: The HTTP libraries :func:`instrument` reaches, by module name.
LIBRARIES: tuple[str, ...] = ("httpx", "httpx2", "aiohttp")

#: What the import hook watches: the libraries, and MLflow (see :func:`_settle_autolog`).
_WATCHED: tuple[str, ...] = (*LIBRARIES, "mlflow")

_MISSING = object()


class _Patch:
    """One attribute of a class replaced, and how to put it back exactly."""

    __slots__ = ("cls", "name", "original", "replacement")

    def __init__(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        self.cls = cls
        self.name = name
        self.original = cls.__dict__.get(name, _MISSING)  # absent: it was inherited
        self.replacement = make(getattr(cls, name))
        setattr(cls, name, self.replacement)

    def undo(self) -> None:
        if self.cls.__dict__.get(self.name) is not self.replacement:
            # Patched again on top of ours (another instrumentation): putting the original
            # back would undo theirs too. Ours, left under theirs, passes everything through.
            return
        if self.original is _MISSING:
            delattr(self.cls, self.name)
        else:
            setattr(self.cls, self.name, self.original)


class _State:
    """What an :func:`instrument` call put in place."""

    def __init__(self, config: TracerConfig | None) -> None:
        self._config = config
        self.patches: list[_Patch] = []
        self.patched: set[str] = set()

    @property
    def config(self) -> TracerConfig:
        config = self._config
        if config is None:  # built on first use: TRACER_* as they are then
            from tracer.config import TracerConfig

            config = self._config = TracerConfig()
        return config

    @config.setter
    def config(self, config: TracerConfig) -> None:
        self._config = config


_state: _State | None = None
# Reentrant: patching one library can import another (the import hook then patches it on the
# same thread, inside the first patch).
_lock = threading.RLock()
_lock_pid = os.getpid()


@contextmanager
def _locked() -> Iterator[None]:
    """The module's lock; a forked child gets a new one (a thread of the parent may have held
    it at the fork, and that thread does not exist in the child)."""
    global _lock, _lock_pid
    if _lock_pid != os.getpid():
        _lock, _lock_pid = threading.RLock(), os.getpid()
    with _lock:
        yield


def instrument(config: TracerConfig | None = None) -> None:
    """Trace every LLM call made through ``httpx``, ``httpx2`` or ``aiohttp`` in the process.

    From this call on, each request of every client of these libraries (built before or
    after, by the application or inside an SDK or framework, sync or async, whatever
    transport it mounts) that a route matches is recorded as a ``TracedClient`` records it;
    every other request passes through untouched. ``config`` defaults to ``TracerConfig()``
    (the ``TRACER_*`` variables), read at the first request.

    Idempotent and thread-safe: a second call changes nothing, except that a ``config``
    passed to it replaces the one in use. Libraries not installed are skipped; those
    imported later are patched on import.
    """
    global _state
    with _locked():
        if _state is not None:
            if config is not None:
                _state.config = config
            return
        state = _State(config)
        _state = state
        for name in LIBRARIES:
            module = sys.modules.get(name)
            if module is not None:
                _patch(state, name, module)
        if "mlflow" in sys.modules:
            _settle_autolog(state)
        if not all(name in sys.modules for name in _WATCHED):
            _add_import_hook()


def uninstrument() -> None:
    """Undo :func:`instrument`: the libraries' own methods are put back exactly and later
    imports are left alone. Responses being read finish their spans. Idempotent; without a
    prior :func:`instrument` it does nothing."""
    global _state
    with _locked():
        state, _state = _state, None
        _remove_import_hook()
        if state is None:
            return
        for patch in reversed(state.patches):
            patch.undo()
        _gated_types.clear()


def instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _state is not None


# --- patching the libraries --------------------------------------------------------------


def _patch(state: _State, name: str, module: ModuleType) -> None:
    """Patch the library ``name`` (already imported as ``module``); never raises."""
    if name in state.patched:
        return
    state.patched.add(name)
    try:
        if name == "aiohttp":
            from tracer import _aiohttp

            replacements = _aiohttp.replacements(module, current_config)
        else:
            replacements = _httpx_replacements(module, name)
        for cls, attr, make in replacements:
            state.patches.append(_Patch(cls, attr, make))  # kept as applied, for undo
    except Exception as exc:
        warn_once(
            ("instrument", name),
            "tracer: cannot instrument %s %s; its requests are not traced (%s: %s)",
            name,
            getattr(module, "__version__", ""),
            type(exc).__name__,
            exc,
        )


def _settle_autolog(state: _State) -> None:
    """Mark MLflow's autologs of the SDKs the tracer records off, unless the user configured
    them (:func:`tracer.spans.settle_autolog`), as a ``TracedClient`` does when it is built:
    here as soon as MLflow is imported, before ``mlflow.genai.evaluate()`` could switch them
    on for its run (the call would then be recorded twice). Never raises."""
    importing = sys.modules.get("tracer.spans")
    if importing is not None and not hasattr(importing, "settle_autolog"):
        return  # tracer.spans is importing MLflow: its transport settles them next
    try:
        if not state.config.enabled:
            return
        from tracer import spans

        spans.settle_autolog()
    except Exception as exc:
        internal_error("settling MLflow's autologs", exc, strict=False)


def current_config() -> TracerConfig | None:
    """The configuration in use while instrumented, else ``None``."""
    state = _state
    return None if state is None else state.config


#: What a library's patch replaces: a class, the name of an attribute, and a function that
#: makes the replacement from the current value.
Replacement = tuple[type, str, Callable[[Any], Any]]


def _httpx_replacements(module: ModuleType, library: str) -> list[Replacement]:
    return [
        (module.Client, "_transport_for_url", _transport_picker(library, is_async=False)),
        (module.AsyncClient, "_transport_for_url", _transport_picker(library, is_async=True)),
    ]


def _transport_picker(library: str, *, is_async: bool) -> Callable[[Any], Any]:
    def make(original: Callable[[Any, Any], Any]) -> Any:
        def _transport_for_url(self: Any, url: Any) -> Any:
            transport = original(self, url)
            state = _state
            if state is None:
                return transport
            return _gate(state, transport, library, is_async)

        _transport_for_url.__wrapped__ = original  # type: ignore[attr-defined]
        _transport_for_url.__doc__ = original.__doc__
        return _transport_for_url

    return make


def _gate(state: _State, transport: Any, library: str, is_async: bool) -> Any:
    """``transport`` behind a gate (one per request: a gate holds nothing but the transport);
    the transport itself when it already traces, or when it cannot be traced (a warning
    naming it, once)."""
    cls = type(transport)
    if (cls, is_async) in _gated_types:
        return (_AsyncGate if is_async else _SyncGate)(transport, library)
    try:
        traced = sys.modules.get("tracer.transport")  # none can exist before it is imported
        if traced is not None and isinstance(transport, (traced.SyncTracing, traced.AsyncTracing)):
            return transport
        method = "handle_async_request" if is_async else "handle_request"
        if not callable(getattr(transport, method, None)):
            raise TypeError(f"it has no {method}()")
        gate = (_AsyncGate if is_async else _SyncGate)(transport, library)
    except Exception as exc:
        warn_once(
            ("instrument-transport", cls.__module__, cls.__qualname__),
            "tracer: cannot trace requests through the transport %s.%s (%s); they go on untraced",
            cls.__module__,
            cls.__qualname__,
            exc,
        )
        return transport
    if callable(getattr(cls, method, None)) and transport.__class__ is cls:
        _gated_types.add((cls, is_async))  # its next transports skip the checks
    return gate


#: The transport types (and client kinds) whose instances are gated without a check: not a
#: tracing transport, the method on the class. Cleared by :func:`uninstrument`, as the check
#: depends on what is imported.
_gated_types: set[tuple[type, bool]] = set()


class _Gate:
    """A client's transport while instrumented: an LLM call goes through a tracing transport
    around it; any other request goes straight to it."""

    __slots__ = ("_library", "transport")
    _is_async = False

    def __init__(self, transport: Any, library: str) -> None:
        self.transport = transport
        self._library = library

    def _tracer_for(self, request: Any) -> Any:
        """A tracing transport for ``request`` (a POST) if it is an LLM call, else ``None``."""
        state = _state
        if state is None:
            return None
        try:
            config = state._config or state.config
            if not config.enabled or _match("POST", request.url.path, config.routes) is None:
                return None
            return _tracing_class(self._library, self._is_async)(self.transport, config)
        except Exception as exc:
            internal_error("instrumenting a request", exc, strict=False)
            return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _SyncGate(_Gate):
    __slots__ = ()

    def handle_request(self, request: Any) -> Any:
        tracing = self._tracer_for(request) if request.method == "POST" else None
        if tracing is None:
            return self.transport.handle_request(request)
        return tracing.handle_request(request)


class _AsyncGate(_Gate):
    __slots__ = ()
    _is_async = True

    async def handle_async_request(self, request: Any) -> Any:
        tracing = self._tracer_for(request) if request.method == "POST" else None
        if tracing is None:
            return await self.transport.handle_async_request(request)
        return await tracing.handle_async_request(request)


def _match(method: str, path: str, custom: Any) -> Any:
    """:func:`tracer.routes.match`, imported at the first POST (not at start-up)."""
    global _match
    from tracer.routes import match

    _match = match
    return match(method, path, custom)


def _tracing_class(library: str, is_async: bool) -> type:
    if library == "httpx2":
        from tracer import _httpx2_transport as traced
    else:
        from tracer import transport as traced  # type: ignore[no-redef]
    return traced.AsyncTracingTransport if is_async else traced.TracingTransport


# --- libraries imported later --------------------------------------------------------------


def _imported(name: str, module: ModuleType) -> None:
    """``name`` was just imported: patch it if :func:`instrument` is in effect."""
    with _locked():
        state = _state
        if state is None:
            return
        if name == "mlflow":
            _settle_autolog(state)
        else:
            _patch(state, name, module)


class _PatchingLoader(importlib.abc.Loader):
    """The library's own loader, which patches the module once it has run."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            _imported(self._name, module)
        except Exception as exc:
            internal_error(f"instrumenting {self._name}", exc, strict=False)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Finds the libraries of :data:`LIBRARIES` (and MLflow) with the other finders, and
    patches them (settles MLflow's autologs) once they are imported."""

    def __init__(self) -> None:
        self._finding = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _WATCHED or getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec: importlib.machinery.ModuleSpec | None = finder.find_spec(
                    fullname, path, target
                )
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._finding.active = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, fullname)
        return spec


_hook = _ImportHook()


def _add_import_hook() -> None:
    if _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)


def _remove_import_hook() -> None:
    while _hook in sys.meta_path:
        sys.meta_path.remove(_hook)
