"""The ``llm-tracer`` command (also ``python -m tracer``): read recorded traces from MLflow.

Three commands, all reading the configured MLflow store (``MLFLOW_TRACKING_URI`` or
``--tracking-uri``; a local SQLite file or a tracking server) and one experiment (``--experiment
NAME``, ``--experiment-id ID``, ``MLFLOW_EXPERIMENT_ID``, ``MLFLOW_EXPERIMENT_NAME``, else the
default experiment)::

    llm-tracer list [--limit N]                  # recent traces as trees, newest last
    llm-tracer show TRACE_ID                     # one trace in full, span by span
    llm-tracer export [--limit N] [--output F]   # traces as JSON lines (Trace.to_json())

and ``llm-tracer run -- COMMAND``, which runs a program with the tracer in place (see
:mod:`tracer.run`).

Only MLflow's tracing API is used (``mlflow.search_traces`` and the tracing client), so the
command works with the lightweight ``mlflow-tracing`` package against a tracking server.
Failures (an unknown trace, an unreachable store) are reported on one line with exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import mlflow
from mlflow import version as mlflow_version
from mlflow.entities import Span, Trace
from mlflow.exceptions import MlflowException

from tracer.show import render_traces, span_children

__all__ = ["CliError", "build_parser", "main", "render_trace_details"]

PROG = "llm-tracer"

#: How many traces ``list`` prints when ``--limit`` is not given.
DEFAULT_LIST_LIMIT = 10

#: MLflow's default experiment, read when no experiment is named anywhere.
DEFAULT_EXPERIMENT_ID = "0"

#: HTTP settings for a tracking server, unless set in the environment: MLflow's own defaults
#: (7 retries with exponential backoff, 120 s timeout) keep a CLI hanging for minutes on a
#: server that is down.
HTTP_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

#: Span attributes not repeated in ``show``'s attribute listing: shown as the span's type,
#: inputs and outputs, or the trace id itself.
_SHOWN_ELSEWHERE: frozenset[str] = frozenset(
    {"mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.spanType", "mlflow.traceRequestId"}
)

_INDENT = "  "

_DESCRIPTION = """\
Read LLM call traces recorded by the tracer (or any MLflow trace) from an MLflow store.

The store is MLFLOW_TRACKING_URI or --tracking-uri: a SQLite file (sqlite:///mlflow.db) or a
tracking server (http://host:5000). Traces are read from one experiment: --experiment NAME or
--experiment-id ID, else MLFLOW_EXPERIMENT_ID or MLFLOW_EXPERIMENT_NAME, else the default
experiment (id 0). These options may also follow the command."""

_EPILOG = """\
examples:
  %(prog)s list --limit 5
  %(prog)s --tracking-uri http://localhost:5000 --experiment agents list
  %(prog)s show tr-9ba15d89616cb21877299f0c9ca4c22a
  %(prog)s export --output traces.jsonl

Errors (unknown trace or experiment, unreachable store) print one line and exit with code 1.
Against a tracking server, requests are retried twice and time out after 30 s; set
MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT to change that."""


class CliError(Exception):
    """A failure the command reports as one line on stderr, exiting with code 1."""


# --- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    0 on success, 1 on a reported error (one line on stderr), 2 on a usage error (from
    argparse), 130 when interrupted.
    """
    if argv is None:
        argv = sys.argv[1:]
    if list(argv[:1]) == ["run"]:  # not a store command: see tracer.run
        from tracer.run import main as run

        return run(argv[1:], prog=prog)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.experiment is not None and args.experiment_id is not None:
        parser.error("--experiment and --experiment-id are mutually exclusive")
    try:
        with _quiet_mlflow(), _http_defaults(), _tracking_uri(args.tracking_uri):
            try:
                _check_store()
                return int(args.run(args))
            except MlflowException as exc:
                raise CliError(f"cannot read the MLflow store {_uri()}: {exc.message}") from exc
    except CliError as exc:
        return _fail(prog, str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. ``llm-tracer export | head -1``
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if args.debug:
            raise
        return _fail(prog, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser: global store options, then ``list``, ``show`` or ``export``
    (``run`` is listed, and handled by :func:`main` before parsing)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_store_options(parser, default=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    list_cmd = commands.add_parser(
        "list",
        help="print recent traces as trees, newest last",
        description=(
            "Print the most recent traces of the experiment as trees, as `make demo` does: one "
            "line per span with its type and duration; for LLM spans also the model, token "
            "usage and a preview of what went in and came out. Oldest first, newest last."
        ),
    )
    list_cmd.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIST_LIMIT,
        metavar="N",
        help=f"how many of the most recent traces to print (default {DEFAULT_LIST_LIMIT})",
    )
    _add_store_options(list_cmd, default=argparse.SUPPRESS)
    list_cmd.set_defaults(run=cmd_list)

    show_cmd = commands.add_parser(
        "show",
        help="print one trace in full: its tree, then every span's details",
        description=(
            "Print one trace in full: its tree, the trace's state, tags and metadata, then "
            "each span in tree order with its name, type, status, timing, attributes, inputs "
            "and outputs (as indented JSON). Trace ids are unique in a store: the experiment "
            "options are not needed."
        ),
    )
    show_cmd.add_argument("trace_id", metavar="TRACE_ID", help="the trace id, e.g. tr-9ba15d…")
    _add_store_options(show_cmd, default=argparse.SUPPRESS)
    show_cmd.set_defaults(run=cmd_show)

    export_cmd = commands.add_parser(
        "export",
        help="write traces as JSON lines (one Trace.to_json() per line)",
        description=(
            "Write the experiment's traces as JSON lines, oldest first: one complete trace "
            "(mlflow.entities.Trace.to_json(), info and spans) per line, readable back with "
            "Trace.from_json()."
        ),
    )
    export_cmd.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="only the N most recent traces (default: all of them)",
    )
    export_cmd.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write to FILE (replacing it) instead of stdout",
    )
    _add_store_options(export_cmd, default=argparse.SUPPRESS)
    export_cmd.set_defaults(run=cmd_export)

    # Listed for --help; `main` hands `run ...` to tracer.run before parsing.
    commands.add_parser(
        "run",
        help="run a command with every LLM call of its Python processes traced",
        description="llm-tracer run [--] COMMAND [ARGS...]: see `llm-tracer run --help`.",
    )
    return parser


def _add_store_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """Add the options that choose the store and experiment. A command's parser adds them with
    ``default=SUPPRESS``, so that they are accepted after the command without overwriting
    values given before it."""
    store = parser.add_argument_group("where to read")
    store.add_argument(
        "--tracking-uri",
        default=default,
        metavar="URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's default)",
    )
    which = store.add_mutually_exclusive_group()
    which.add_argument(
        "--experiment",
        default=default,
        metavar="NAME",
        help="experiment name (default: MLFLOW_EXPERIMENT_NAME, else the default experiment)",
    )
    which.add_argument(
        "--experiment-id",
        default=default,
        metavar="ID",
        help="experiment id (default: MLFLOW_EXPERIMENT_ID)",
    )
    store.add_argument(
        "--debug",
        action="store_true",
        default=default if default is argparse.SUPPRESS else False,
        help="show the full traceback of an unexpected error",
    )


def _positive_int(text: str) -> int:
    """argparse type for ``--limit``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


# --- commands ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: the most recent traces as trees, newest last."""
    experiment_id = resolve_experiment_id(args.experiment, args.experiment_id)
    traces = search_recent(experiment_id, args.limit)
    if not traces:
        print(f"no traces in experiment {experiment_id}")
        return 0
    print(render_traces(traces))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``show``: one trace in full."""
    print(render_trace_details(get_trace(args.trace_id)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``export``: traces as JSON lines, to stdout or a file."""
    experiment_id = resolve_experiment_id(args.experiment, args.experiment_id)
    traces = search_recent(experiment_id, args.limit)
    if args.output is None:
        _write_lines(sys.stdout, traces)
        sys.stdout.flush()
        return 0
    try:
        with args.output.open("w", encoding="utf-8", newline="\n") as out:
            _write_lines(out, traces)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"exported {len(traces)} trace(s) to {args.output}", file=sys.stderr)
    return 0


def _write_lines(out: TextIO, traces: Sequence[Trace]) -> None:
    """One ``Trace.to_json()`` (a single line of JSON) per trace."""
    for trace in traces:
        out.write(trace.to_json() + "\n")


# --- reading the store ------------------------------------------------------------------------


def resolve_experiment_id(name: str | None, experiment_id: str | None) -> str:
    """The experiment to read: ``--experiment-id``, ``--experiment`` (looked up by name),
    ``MLFLOW_EXPERIMENT_ID``, ``MLFLOW_EXPERIMENT_NAME``, else the default experiment."""
    if experiment_id:
        return experiment_id
    if name:
        return _experiment_id_by_name(name)
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    if os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return _experiment_id_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    return DEFAULT_EXPERIMENT_ID


def _experiment_id_by_name(name: str) -> str:
    """The id of the experiment called ``name``; :class:`CliError` if there is none."""
    lookup = getattr(mlflow, "get_experiment_by_name", None)
    if lookup is None:
        # mlflow-tracing has no experiments API at the top level; its fluent API
        # (mlflow.set_experiment) looks names up through this client.
        from mlflow.tracking._tracking_service.client import TrackingServiceClient

        lookup = TrackingServiceClient(mlflow.get_tracking_uri()).get_experiment_by_name
    experiment = lookup(name)
    if experiment is None:
        raise CliError(f"no experiment named {name!r} in {_uri()}")
    return str(experiment.experiment_id)


def search_recent(experiment_id: str, limit: int | None) -> list[Trace]:
    """The ``limit`` most recent traces of the experiment (all when None), oldest first."""
    # ``locations`` replaced ``experiment_ids`` (now deprecated) in MLflow 3.x.
    if "locations" in inspect.signature(mlflow.search_traces).parameters:
        where: dict[str, Any] = {"locations": [experiment_id]}
    else:
        where = {"experiment_ids": [experiment_id]}
    traces = mlflow.search_traces(
        **where, max_results=limit, order_by=["timestamp_ms DESC"], return_type="list"
    )
    return list(reversed(traces))


def get_trace(trace_id: str) -> Trace:
    """The trace with this id; :class:`CliError` when the store has no such trace."""
    # mlflow.get_trace() logs and returns None on any failure: the tracing client (what
    # MlflowClient.get_trace uses) tells a missing trace from an unreachable store.
    from mlflow.tracing.client import TracingClient

    try:
        return TracingClient().get_trace(trace_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise CliError(f"no trace {trace_id!r} in {_uri()}") from exc
        raise


def _check_store() -> None:
    """Fail early, with a hint, where MLflow would fail obscurely or create an empty store."""
    if not mlflow.is_tracking_uri_set() and getattr(mlflow_version, "IS_TRACING_SDK_ONLY", False):
        raise CliError(
            "no tracking URI: set MLFLOW_TRACKING_URI or pass --tracking-uri "
            "(with mlflow-tracing, the URI of a tracking server)"
        )
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).is_file():
            raise CliError(
                f"no MLflow store at {path} ({uri}): set MLFLOW_TRACKING_URI or pass --tracking-uri"
            )


def _uri() -> str:
    """The tracking URI in use, for messages."""
    try:
        return str(mlflow.get_tracking_uri())
    except Exception:  # the URI itself is what failed
        return "(unknown tracking URI)"


# --- show ------------------------------------------------------------------------------------


def render_trace_details(trace: Trace) -> str:
    """A trace in full: the tree, the trace's state, tags and metadata, then each span (in tree
    order) with its type, status, timing, attributes, events, inputs and outputs as JSON."""
    info = trace.info
    spans = _tree_order(list(trace.data.spans))
    by_id = {span.span_id: span for span in spans}
    trace_start = min((s.start_time_ns for s in spans if s.start_time_ns), default=None)

    blocks = [render_traces([trace])]
    lines = [f"trace {info.trace_id}"]
    lines += _fields(
        [
            ("state", _plain(info.state)),
            ("experiment", getattr(info, "experiment_id", None) or "—"),
            ("started", _timestamp(info.request_time * 1_000_000)),
            (
                "duration",
                f"{info.execution_duration} ms" if info.execution_duration is not None else "—",
            ),
            ("spans", str(len(spans))),
        ]
    )
    lines += _json_field("tags", dict(info.tags or {}))
    lines += _json_field("metadata", dict(info.trace_metadata or {}))
    blocks.append("\n".join(lines))

    for number, span in enumerate(spans, 1):
        blocks.append(_span_details(span, number, len(spans), by_id, trace_start))
    return "\n\n".join(blocks)


def _span_details(
    span: Span, number: int, count: int, by_id: dict[str, Span], trace_start: int | None
) -> str:
    """One span's block in ``show``: its fields, then attributes, events, inputs and outputs."""
    parent = by_id.get(span.parent_id) if span.parent_id else None
    if parent is not None:
        parent_text = f"{parent.name} ({span.parent_id})"
    else:
        parent_text = "— (root)" if not span.parent_id else f"{span.parent_id} (not in trace)"
    status = span.status
    status_text = _plain(status.status_code) if status is not None else "UNSET"
    if status is not None and status.description:
        status_text += f": {status.description}"
    start, end = span.start_time_ns, span.end_time_ns
    offset = f" (+{(start - trace_start) / 1e6:.1f} ms)" if start and trace_start else ""

    lines = [f"span {number}/{count} · {span.name}"]
    lines += _fields(
        [
            ("type", span.span_type or "UNKNOWN"),
            ("status", status_text),
            ("span id", str(span.span_id)),
            ("parent", parent_text),
            ("start", (_timestamp(start) if start else "—") + offset),
            ("end", _timestamp(end) if end else "— (unfinished)"),
            ("duration", f"{(end - start) / 1e6:.1f} ms" if start and end else "unfinished"),
        ]
    )
    attributes = {k: v for k, v in (span.attributes or {}).items() if k not in _SHOWN_ELSEWHERE}
    lines += _json_field("attributes", attributes)
    if span.events:
        events = [
            {
                "name": event.name,
                "time": _timestamp(event.timestamp) if event.timestamp else None,
                "attributes": dict(event.attributes or {}),
            }
            for event in span.events
        ]
        lines += _json_field("events", events)
    lines += _json_field("inputs", span.inputs)
    lines += _json_field("outputs", span.outputs)
    return "\n".join(lines)


def _tree_order(spans: list[Span]) -> list[Span]:
    """Spans depth-first, siblings by start time: the order of the tree ``show`` prints."""
    children = span_children(spans)
    ordered: list[Span] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        span = stack.pop()
        ordered.append(span)
        stack.extend(reversed(children.get(span.span_id, [])))
    return ordered


def _fields(pairs: list[tuple[str, str]]) -> list[str]:
    """``label: value`` lines, indented, with the values aligned."""
    width = max(len(label) for label, _ in pairs) + 2
    return [f"{_INDENT}{(label + ':').ljust(width)}{value}" for label, value in pairs]


def _json_field(label: str, value: Any) -> list[str]:
    """``label:`` then ``value`` as indented JSON under it."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    body = [_INDENT * 2 + line for line in text.splitlines()]
    return [f"{_INDENT}{label}:", *body]


def _plain(value: Any) -> str:
    """An enum's value (``OK``), anything else as text."""
    return str(getattr(value, "value", value))


def _timestamp(ns: int) -> str:
    """Local time with milliseconds, from nanoseconds since the epoch."""
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# --- process state ----------------------------------------------------------------------------


def _fail(prog: str, message: str) -> int:
    """Report ``message`` as one line on stderr; the exit code 1."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


@contextlib.contextmanager
def _tracking_uri(uri: str | None) -> Iterator[None]:
    """Use ``uri`` (if given) as MLflow's tracking URI for the command's duration, then go back
    to the URI set before, so that calling :func:`main` in a process leaves it as it was."""
    if not uri:
        yield
        return
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if previous is not None and previous != uri:
            mlflow.set_tracking_uri(previous)


@contextlib.contextmanager
def _http_defaults() -> Iterator[None]:
    """Apply :data:`HTTP_DEFAULTS` missing from the environment, for the command's duration."""
    added = [name for name in HTTP_DEFAULTS if name not in os.environ]
    for name in added:
        os.environ[name] = HTTP_DEFAULTS[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Keep MLflow's (and its database migrations') INFO chatter off the terminal."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
