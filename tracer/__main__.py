"""The ``llm-tracer`` command (also ``python -m tracer``).

``run`` (see :mod:`tracer.run`) starts a program with the tracer in place and imports nothing
heavy; the other commands read recorded traces (see :mod:`tracer.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *, prog: str = "llm-tracer") -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        from tracer.run import main as run

        return run(args[1:], prog=prog)
    from tracer.cli import main as cli

    return cli(args, prog=prog)


if __name__ == "__main__":
    sys.exit(main(prog="python -m tracer"))
