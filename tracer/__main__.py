"""``python -m tracer``: the ``llm-tracer`` command (see :mod:`tracer.cli`)."""

from __future__ import annotations

import sys

from tracer.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m tracer"))
