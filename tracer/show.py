"""Render recorded MLflow traces as readable trees, for terminals and the demo.

One line per span, indented by its place in the trace: name, span type and duration, plus, for
LLM spans, the model, token usage, time to first token (streams) and, under the span, a
one-line preview of what went in and what came out::

    trace tr-579c54f4… · started 2026-11-25 13:09:17 · total 47 ms
    run_agent  AGENT  47.6 ms
    ├─ chat gpt-4o  CHAT_MODEL  3.7 ms · gpt-4o · tokens 51 in / 10 out
    │     in:  What's the weather like in Paris and London?
    │     out: tool_calls: get_weather(city="Paris"), get_weather(city="London")
    ├─ get_weather  TOOL  0.3 ms
    ├─ get_weather  TOOL  0.2 ms
    └─ chat gpt-4o  CHAT_MODEL  16.1 ms · gpt-4o · tokens 105 in / 24 out (64 cached)
          in:  tool results: The weather in Paris is sunny, 22°C. | The weather in London…
          out: Based on the tools: The weather in Paris is sunny, 22°C.; The weather in…

Run ``python -m tracer.show [--limit N] [--experiment NAME]`` to print the latest traces of an
experiment (the active one by default: ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import mlflow
from mlflow.entities import Span, SpanStatusCode, SpanType, Trace

__all__ = ["main", "render_trace", "render_traces", "span_children"]

#: Span types whose lines carry model, token usage and input/output previews.
LLM_SPAN_TYPES: frozenset[str] = frozenset({SpanType.CHAT_MODEL, SpanType.LLM, SpanType.EMBEDDING})

PREVIEW_CHARS = 80

_BRANCH, _LAST, _PIPE, _BLANK = "├─ ", "└─ ", "│  ", "   "


def span_children(spans: list[Span]) -> dict[str | None, list[Span]]:
    """Each span's children by start time, under its id; the roots (and spans whose parent is
    not among ``spans``) under ``None``."""
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: s.start_time_ns or 0)
    return children


def render_trace(trace: Trace) -> str:
    """Render one trace as a tree, one line per span (plus preview lines under LLM spans)."""
    children = span_children(list(trace.data.spans))

    lines: list[str] = []

    def visit(span: Span, prefix: str, glyph: str, child_prefix: str) -> None:
        lines.append(prefix + glyph + _span_line(span))
        kids = children.get(span.span_id, [])
        detail_prefix = prefix + child_prefix + (_PIPE if kids else _BLANK)
        lines.extend(detail_prefix + line for line in _previews(span))
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            visit(kid, prefix + child_prefix, _LAST if last else _BRANCH, _BLANK if last else _PIPE)

    for root in children.get(None, []):
        visit(root, "", "", "")
    return "\n".join(lines)


def render_traces(traces: Iterable[Trace]) -> str:
    """Render several traces, each under a header line (trace id, start time, duration)."""
    blocks: list[str] = []
    for trace in traces:
        info = trace.info
        start = datetime.fromtimestamp(info.request_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
        duration = info.execution_duration
        total = f"{duration} ms" if duration is not None else "unfinished"
        header = f"trace {info.trace_id} · started {start} · total {total}"
        body = render_trace(trace)
        blocks.append(f"{header}\n{body}" if body else header)
    return "\n\n".join(blocks)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the latest traces of an experiment as trees, oldest first."""
    parser = argparse.ArgumentParser(
        prog="python -m tracer.show", description="Print recorded MLflow traces as trees."
    )
    parser.add_argument("--limit", type=int, default=10, help="how many traces (default 10)")
    parser.add_argument(
        "--experiment", help="experiment name (default: the active experiment, as MLflow sees it)"
    )
    args = parser.parse_args(argv)

    experiment_ids: list[str] | None = None
    if args.experiment:
        experiment = mlflow.get_experiment_by_name(args.experiment)
        if experiment is None:
            print(f"no experiment named {args.experiment!r}", file=sys.stderr)
            return 1
        experiment_ids = [experiment.experiment_id]
    traces = mlflow.search_traces(
        experiment_ids=experiment_ids,
        max_results=args.limit,
        order_by=["timestamp_ms DESC"],
        return_type="list",
    )
    if not traces:
        print("no traces found")
        return 0
    print(render_traces(reversed(traces)))
    return 0


# --- one span ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _span_line(span: Span) -> str:
    """``name  TYPE  12.3 ms`` and, for LLM spans, `` · model · tokens ... · first token ...``."""
    if span.end_time_ns is not None and span.start_time_ns is not None:
        duration = _ms((span.end_time_ns - span.start_time_ns) / 1e6)
    else:
        duration = "unfinished"
    parts = [f"{span.name}  {span.span_type or 'UNKNOWN'}  {duration}"]
    if span.span_type in LLM_SPAN_TYPES:
        model = span.get_attribute("mlflow.llm.model")
        if model:
            parts.append(str(model))
        usage = span.get_attribute("mlflow.chat.tokenUsage")
        if isinstance(usage, dict):
            tokens_in, tokens_out = usage.get("input_tokens", "?"), usage.get("output_tokens", "?")
            tokens = f"tokens {tokens_in} in / {tokens_out} out"
            cached = usage.get("cache_read_input_tokens")
            if cached:
                tokens += f" ({cached} cached)"
            parts.append(tokens)
        first = span.get_attribute("stream.time_to_first_chunk_ms")
        if isinstance(first, (int, float)):
            parts.append(f"first token {_ms(first)}")
        if span.get_attribute("stream.completed") is False:
            parts.append("stream incomplete")
    status = span.status
    if status is not None and status.status_code == SpanStatusCode.ERROR:
        parts.append("ERROR: " + _truncate(status.description) if status.description else "ERROR")
    return " · ".join(parts)


def _previews(span: Span) -> list[str]:
    """``in:`` and ``out:`` preview lines for an LLM span (none for other spans)."""
    if span.span_type not in LLM_SPAN_TYPES:
        return []
    lines: list[str] = []
    text_in = _input_preview(span.inputs)
    if text_in:
        lines.append("in:  " + _truncate(text_in))
    text_out = _output_preview(span.outputs)
    if text_out:
        lines.append("out: " + _truncate(text_out))
    return lines


def _truncate(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(content: Any) -> str:
    """Message content as text: a string, or the text of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(part.get("content"), (str, list)):
                    texts.append(_text(part["content"]))
                elif part.get("type"):
                    texts.append(f"[{part['type']}]")
        return " ".join(t for t in texts if t)
    return ""


def _input_preview(inputs: Any) -> str:
    """The last user message, or the tool results when the request ends with them."""
    if not isinstance(inputs, dict):
        return inputs if isinstance(inputs, str) else ""
    messages = inputs.get("messages")
    if isinstance(messages, list) and messages:
        trailing_tools: list[str] = []
        for message in reversed(messages):
            if not isinstance(message, dict) or message.get("role") != "tool":
                break
            trailing_tools.append(_text(message.get("content")))
        if trailing_tools:
            return "tool results: " + " | ".join(reversed(trailing_tools))
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text(message.get("content"))
        last = messages[-1]
        return _text(last.get("content")) if isinstance(last, dict) else ""
    contents = inputs.get("contents")  # Gemini
    if isinstance(contents, list) and contents and isinstance(contents[-1], dict):
        parts = contents[-1].get("parts")
        if isinstance(parts, list):
            responses = [
                p["functionResponse"]
                for p in parts
                if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)
            ]
            if responses:
                return "tool results: " + " | ".join(
                    json.dumps(r.get("response"), ensure_ascii=False) for r in responses
                )
            return _text(parts)
    for key in ("prompt", "input"):
        value = inputs.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            if all(isinstance(v, str) for v in value):
                return " | ".join(value)
            last = value[-1]
            if isinstance(last, dict):
                return _text(last.get("content"))
    return ""


def _call(name: Any, arguments: Any) -> str:
    """``name(key="value", ...)`` from a tool call's name and (JSON) arguments."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return f"{name}({arguments})"
    if isinstance(arguments, dict):
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
        return f"{name}({args})"
    return f"{name}({json.dumps(arguments, ensure_ascii=False)})"


def _tool_calls(calls: list[Any]) -> str:
    rendered: list[str] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if not isinstance(function, dict):
            function = call
        rendered.append(_call(function.get("name"), function.get("arguments", {})))
    return "tool_calls: " + ", ".join(rendered)


def _output_preview(outputs: Any) -> str:
    """The first choice's content, its tool calls, or the like for other API shapes."""
    if isinstance(outputs, str):
        return outputs
    if not isinstance(outputs, dict):
        return ""
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message")
        if isinstance(message, dict):
            calls = message.get("tool_calls")
            if isinstance(calls, list) and calls:
                return _tool_calls(calls)
            if message.get("refusal"):
                return f"refusal: {message['refusal']}"
            return _text(message.get("content"))
        text = choice.get("text")
        if isinstance(text, str):  # legacy completions
            return text
    data = outputs.get("data")
    if isinstance(data, list) and outputs.get("object") == "list":  # embeddings
        first = data[0].get("embedding") if data and isinstance(data[0], dict) else None
        size = f" of {len(first)} dims" if isinstance(first, list) else ""
        return f"{len(data)} embedding(s){size}"
    content = outputs.get("content")
    if isinstance(content, list):  # Anthropic-style messages
        calls = [
            {"name": p.get("name"), "arguments": p.get("input")}
            for p in content
            if isinstance(p, dict) and p.get("type") == "tool_use"
        ]
        return _tool_calls(calls) if calls else _text(content)
    output = outputs.get("output")
    if isinstance(output, list):  # Responses API
        calls = [
            {"name": item.get("name"), "arguments": item.get("arguments")}
            for item in output
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]
        if calls:
            return _tool_calls(calls)
        texts = [
            _text(item.get("content"))
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
        ]
        return " ".join(t for t in texts if t)
    candidates = outputs.get("candidates")  # Gemini
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        content = candidates[0].get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        parts = [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
        calls = [
            {"name": p["functionCall"].get("name"), "arguments": p["functionCall"].get("args")}
            for p in parts
            if isinstance(p.get("functionCall"), dict)
        ]
        if calls:
            return _tool_calls(calls)
        return _text([p for p in parts if not p.get("thought")])
    message = outputs.get("message")  # Ollama chat
    if isinstance(message, dict):
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            return _tool_calls(calls)
        return _text(message.get("content"))
    if isinstance(outputs.get("response"), str):  # Ollama generate
        return str(outputs["response"])
    if "text" in outputs and isinstance(outputs["text"], str):
        return outputs["text"]
    if "error" in outputs and isinstance(outputs["error"], dict):
        return f"error: {outputs['error'].get('message', '')}"
    return ""


if __name__ == "__main__":
    sys.exit(main())
