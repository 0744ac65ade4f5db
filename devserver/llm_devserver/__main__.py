"""``python -m llm_devserver [--port N] [--verbose]``: serve until Ctrl-C."""

from __future__ import annotations

from llm_devserver.server import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m llm_devserver"))
