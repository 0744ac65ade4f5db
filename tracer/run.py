"""``llm-tracer run -- COMMAND [ARGS...]``: run a command with every Python process it starts
traced by :func:`tracer.instrument`, with no change to its code.

As ``opentelemetry-instrument`` and ``ddtrace-run`` do, the command runs in place of this one
(``exec``) with ``PYTHONPATH`` starting with a directory whose ``sitecustomize`` module calls
:func:`tracer.instrument` when Python starts (then runs any ``sitecustomize`` it hides). Python
child processes inherit ``PYTHONPATH``, so they are traced too. ``TRACER_*`` and ``MLFLOW_*``
variables configure the tracer as usual. Python started with ``-I``, ``-E`` or ``-S`` ignores
``PYTHONPATH`` or ``sitecustomize`` and is not traced.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["BOOTSTRAP_DIR", "environment", "main", "without_bootstrap"]

#: The directory put first on ``PYTHONPATH``: it holds only ``sitecustomize.py``.
BOOTSTRAP_DIR = str(Path(__file__).resolve().with_name("_bootstrap"))

USAGE = """\
usage: {prog} run [--] COMMAND [ARGS...]

Run COMMAND with every LLM call of every Python process it starts traced (tracer.instrument()
at interpreter start-up). TRACER_* and MLFLOW_* variables configure the tracer.

examples:
  {prog} run -- python app.py
  TRACER_CAPTURE_CONTENT=false {prog} run -- pytest -q
"""


def environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the bootstrap directory first on ``PYTHONPATH`` (once)."""
    rest = [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *rest])
    return env


def without_bootstrap(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the bootstrap directory taken off ``PYTHONPATH``: for the tracer's own
    helper processes, which must not trace themselves."""
    env = dict(base)
    if BOOTSTRAP_DIR in env.get("PYTHONPATH", "").split(os.pathsep):
        rest = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and p != BOOTSTRAP_DIR]
        if rest:
            env["PYTHONPATH"] = os.pathsep.join(rest)
        else:
            del env["PYTHONPATH"]
    return env


def main(argv: Sequence[str], *, prog: str = "llm-tracer") -> int:
    """Replace this process by ``argv`` (after an optional ``--``), instrumented. Returns only
    when it does not run it: 0 after ``--help``, 2 for a usage error, 127 when the command is
    not found, 126 when it cannot be run."""
    args = list(argv)
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE.format(prog=prog))
        return 0
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.stderr.write(USAGE.format(prog=prog))
        sys.stderr.write(f"{prog} run: error: a command to run is required\n")
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(args[0], args, environment(os.environ))
    except OSError as exc:
        sys.stderr.write(f"{prog} run: cannot run {args[0]}: {exc.strerror or exc}\n")
        return 127 if isinstance(exc, FileNotFoundError) else 126
    return 126  # not reached: exec does not return
