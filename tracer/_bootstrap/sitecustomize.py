"""Put on ``PYTHONPATH`` by ``llm-tracer run``: Python imports this module at start-up, in
every Python process the command starts (children inherit the variable).

It calls :func:`tracer.instrument` (configured by the ``TRACER_*`` variables, read at the first
LLM call), then runs the ``sitecustomize`` module this one hides, if there is one. It imports
neither MLflow nor any HTTP library: those are patched when the program imports them. It never
stops the program: if the tracer cannot be set up, one line on standard error says why.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _instrument() -> None:
    try:
        import tracer

        tracer.instrument()
    except Exception as exc:
        sys.stderr.write(
            f"llm-tracer: this Python process is not traced ({type(exc).__name__}: {exc})\n"
        )


def _run_hidden_sitecustomize() -> None:
    """The ``sitecustomize`` that would have run without ``llm-tracer run``."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_instrument()
_run_hidden_sitecustomize()
