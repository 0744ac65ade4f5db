"""One span per LLM call, however many tracing layers the call crosses.

A call can pass through the tracer twice: a client wrapped with :func:`~tracer.wrap` while
:func:`tracer.instrument` is on, a transport that sends through another instrumented client
(LiteLLM's aiohttp-backed httpx transport), a ``TracedClient`` mounted inside another. The
outermost layer that records the call marks the context while the call is sent; the layers
under it pass the request through untraced.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["enter", "inside", "leave"]

_RECORDING: ContextVar[bool] = ContextVar("tracer_recording_llm_call", default=False)


def inside() -> bool:
    """Whether an outer layer is already recording the call being sent."""
    return _RECORDING.get()


def enter() -> Token[bool]:
    """Mark the context: the call being sent is recorded (pass the token to :func:`leave`)."""
    return _RECORDING.set(True)


def leave(token: Token[bool]) -> None:
    """Undo :func:`enter`."""
    _RECORDING.reset(token)
