"""Where the local LLM server was: it is now the distribution ``llm-devserver`` (import
``llm_devserver``), so that the tracer's runtime wheel holds only the tracer.

``from tracer.devserver import DevServer`` and ``python -m tracer.devserver`` keep working
wherever ``llm-devserver`` is installed (a checkout's ``make install`` installs it, with the
``dev`` extra); elsewhere they say how to install it.
"""

from __future__ import annotations

try:
    from llm_devserver import DevServer, RecordedRequest, main
except ModuleNotFoundError as exc:
    if exc.name != "llm_devserver":
        raise  # installed, but something it needs is not: that error says what
    raise ImportError(
        "the local LLM server is the distribution llm-devserver now (import llm_devserver); "
        "install it from a checkout of the repository with `pip install ./devserver`"
    ) from exc

__all__ = ["DevServer", "RecordedRequest", "main"]

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m tracer.devserver"))
