"""From the rounds' raw figures to the summary, the targets of issue 6, and the printed table.

Per-call figures (wall times, times to first chunk) are pooled over all rounds; per-batch figures
(CPU time per call, throughput, peak memory) give one value per round. "p90" is the 90th
percentile on the slow side: for a throughput, where higher is better, it is the 10th percentile.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "machine", "passthrough_lines", "render", "summarize", "targets"]

MIB = 1024 * 1024
PACKAGES = (
    "llm-wire-tracer",
    "openai",
    "httpx",
    "httpx2",
    "aiohttp",
    "mlflow",
    "opentelemetry-sdk",
    "sqlalchemy",
    "pydantic",
)


# --- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / MIB, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the benchmark ran on: CPU, cores, memory, OS, Python and package versions."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
    }


def machine_lines(info: dict[str, Any]) -> list[str]:
    """``info`` (from :func:`machine`) as a few printable lines."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    return [
        f"CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['memory_gib']} GiB memory",
        f"OS: {info['os']}; Python: {info['python']}",
        f"Packages: {packages}",
    ]


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Stat:
    """The median and the slow-side 90th percentile of some samples."""

    median: float
    p90: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float], higher_is_better: bool = False) -> Stat | None:
        """``None`` when there are no samples."""
        if not values:
            return None
        p90 = percentile(values, 10 if higher_is_better else 90)
        return cls(statistics.median(values), p90, len(values))


_Extract = Callable[[dict[str, Any]], list[float]]


def _pooled(workload: str, key: str, scale: float) -> _Extract:
    return lambda r: [v * scale for v in r[workload][key]] if r.get(workload) else []


def _each(workload: str, key: str, scale: float) -> _Extract:
    # A figure may be None: the tracking server's CPU without a tracking server.
    return lambda r: (
        [r[workload][key] * scale] if r.get(workload) and r[workload].get(key) is not None else []
    )


def _each_in(workload: str, part: str, key: str, scale: float) -> _Extract:
    def extract(r: dict[str, Any]) -> list[float]:
        found = (r.get(workload) or {}).get(part)
        return [found[key] * scale] if found else []

    return extract


@dataclass(frozen=True)
class Metric:
    """A measured figure: how to read its samples from one round's results, how to show it."""

    label: str  #: may name sizes: ``{stream_chunks}``, ``{concurrency}``, ``{big_chunks}``
    unit: str
    extract: _Extract
    higher_is_better: bool = False
    ratios: bool = True  #: show ratios to bare and autolog (not for export drain times)
    shown: bool = True  #: in the printed table (every metric is in the JSON file)


METRICS: dict[str, Metric] = {
    "chat_wall": Metric(
        "non-streaming chat: wall time per call", "ms", _pooled("non_streaming", "wall_s", 1e3)
    ),
    "chat_cpu": Metric(
        "non-streaming chat: CPU per call (process + helper processes)",
        "ms",
        _each("non_streaming", "cpu_s_per_call", 1e3),
    ),
    "chat_cpu_own": Metric(
        "non-streaming chat: CPU per call (caller's process only)",
        "ms",
        _each("non_streaming", "cpu_in_process_s_per_call", 1e3),
    ),
    "chat_server_cpu": Metric(
        "non-streaming chat: tracking server CPU per call",
        "ms",
        _each("non_streaming", "server_cpu_s_per_call", 1e3),
    ),
    "chat_drain": Metric(
        "non-streaming chat: export drain after the batch",
        "ms",
        _each("non_streaming", "drain_s", 1e3),
        ratios=False,
        shown=False,
    ),
    "stream_wall": Metric(
        "{stream_chunks}-chunk stream: wall time per call", "ms", _pooled("stream", "wall_s", 1e3)
    ),
    "stream_cpu": Metric(
        "{stream_chunks}-chunk stream: CPU per call (process + helpers)",
        "ms",
        _each("stream", "cpu_s_per_call", 1e3),
    ),
    "stream_server_cpu": Metric(
        "{stream_chunks}-chunk stream: tracking server CPU per call",
        "ms",
        _each("stream", "server_cpu_s_per_call", 1e3),
    ),
    "ttfc": Metric("stream: time to first chunk", "ms", _pooled("first_chunk", "ttfc_s", 1e3)),
    "realistic_chat_wall": Metric(
        "realistic: non-streaming chat wall time per call",
        "ms",
        _pooled("realistic", "chat_wall_s", 1e3),
    ),
    "realistic_stream_wall": Metric(
        "realistic: {stream_chunks}-chunk stream wall time",
        "ms",
        _pooled("realistic", "stream_wall_s", 1e3),
    ),
    "realistic_short_wall": Metric(
        "realistic: {ttfc_chunks}-chunk stream wall time",
        "ms",
        _pooled("realistic", "short_wall_s", 1e3),
    ),
    "realistic_ttfc": Metric(
        "realistic: time to first chunk ({ttfc_chunks}-chunk streams)",
        "ms",
        _pooled("realistic", "short_ttfc_s", 1e3),
    ),
    "realistic_cpu": Metric(
        "realistic: CPU per call (process + helper processes)",
        "ms",
        _each("realistic", "cpu_s_per_call", 1e3),
    ),
    "realistic_cpu_own": Metric(
        "realistic: CPU per call (caller's process only)",
        "ms",
        _each("realistic", "cpu_in_process_s_per_call", 1e3),
    ),
    "realistic_server_cpu": Metric(
        "realistic: tracking server CPU per call",
        "ms",
        _each("realistic", "server_cpu_s_per_call", 1e3),
    ),
    "realistic_drain": Metric(
        "realistic: export drain after the batch",
        "ms",
        _each("realistic", "drain_s", 1e3),
        ratios=False,
        shown=False,
    ),
    "throughput": Metric(
        "{concurrency} concurrent async streams: throughput",
        "streams/s",
        _each("concurrent", "throughput", 1.0),
        higher_is_better=True,
    ),
    "concurrent_cpu": Metric(
        "{concurrency} concurrent async streams: CPU (process + helpers)",
        "s",
        _each("concurrent", "cpu_s", 1.0),
    ),
    "concurrent_server_cpu": Metric(
        "{concurrency} concurrent async streams: tracking server CPU",
        "s",
        _each("concurrent", "server_cpu_s", 1.0),
    ),
    "concurrent_drain": Metric(
        "{concurrency} concurrent async streams: export drain after them",
        "s",
        _each("concurrent", "drain_s", 1.0),
        ratios=False,
    ),
    "memory_sdk": Metric(
        "{big_chunks}-chunk stream read with the SDK: peak memory",
        "KiB",
        _each_in("memory", "sdk", "read_peak_bytes", 1 / 1024),
    ),
    "memory_sdk_total": Metric(
        "{big_chunks}-chunk stream read with the SDK: peak memory incl. export",
        "KiB",
        _each_in("memory", "sdk", "total_peak_bytes", 1 / 1024),
        shown=False,
    ),
    "memory_raw": Metric(
        "{big_chunks}-chunk stream read as raw bytes: peak memory",
        "KiB",
        _each_in("memory", "raw", "read_peak_bytes", 1 / 1024),
    ),
    "memory_raw_total": Metric(
        "{big_chunks}-chunk stream read as raw bytes: peak memory incl. export",
        "KiB",
        _each_in("memory", "raw", "total_peak_bytes", 1 / 1024),
        shown=False,
    ),
}


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per mode: each metric's :class:`Stat` (as a dict), plus the figures derived from them."""
    summary: dict[str, dict[str, Any]] = {}
    for mode, results in rounds.items():
        metrics: dict[str, Any] = {}
        for key, metric in METRICS.items():
            samples = [v for r in results for v in metric.extract(r)]
            stat = Stat.of(samples, metric.higher_is_better)
            metrics[key] = None if stat is None else stat.__dict__
        last = results[-1] if results else {}
        metrics["stream_chunks"] = (last.get("stream") or {}).get("chunks")
        realistic = last.get("realistic") or {}
        metrics["realistic_stream_chunks"] = realistic.get("stream_chunks")
        metrics["realistic_short_chunks"] = realistic.get("short_chunks")
        memory: dict[str, Any] = next((r["memory"] for r in results if r.get("memory")), {})
        metrics["output_bytes"] = memory.get("output_bytes")
        metrics["big_chunks"] = memory.get("chunks")
        summary[mode] = metrics
    bare = summary.get("bare", {})
    for metrics in summary.values():
        metrics["chat_added_ms"] = _minus(metrics, bare, "chat_wall")
        metrics["chat_cpu_added_ms"] = _minus(metrics, bare, "chat_cpu")
        metrics["chat_cpu_own_added_ms"] = _minus(metrics, bare, "chat_cpu_own")
        metrics["stream_cpu_added_ms"] = _minus(metrics, bare, "stream_cpu")
        metrics["chunk_added_us"] = _per_chunk_us(metrics, bare, "stream_wall", "stream_chunks")
        metrics["realistic_chat_added_ms"] = _minus(metrics, bare, "realistic_chat_wall")
        metrics["realistic_chunk_added_us"] = _per_chunk_us(
            metrics, bare, "realistic_stream_wall", "realistic_stream_chunks"
        )
        metrics["realistic_short_chunk_added_us"] = _per_chunk_us(
            metrics, bare, "realistic_short_wall", "realistic_short_chunks"
        )
        metrics["tracer_memory_kib"] = _minus(metrics, bare, "memory_raw")
        metrics["sdk_memory_added_kib"] = _minus(metrics, bare, "memory_sdk")
    return summary


def _median(metrics: dict[str, Any], key: str) -> float | None:
    stat = metrics.get(key)
    return None if stat is None else float(stat["median"])


def _minus(metrics: dict[str, Any], bare: dict[str, Any], key: str) -> float | None:
    mine, base = _median(metrics, key), _median(bare, key)
    return None if mine is None or base is None else mine - base


def _per_chunk_us(
    metrics: dict[str, Any], bare: dict[str, Any], key: str, chunks_key: str
) -> float | None:
    """The added wall time (ms) of stream metric ``key``, in µs per chunk of the stream."""
    added, chunks = _minus(metrics, bare, key), metrics.get(chunks_key)
    return None if added is None or not chunks else added * 1e3 / chunks


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One target of issue 6: a ratio and its limit."""

    name: str
    limit: float
    at_most: bool  #: the ratio must be <= limit (else >= limit)
    ratio: Callable[[dict[str, Any], dict[str, dict[str, Any]]], float | None]


def _vs_autolog(key: str) -> Callable[[dict[str, Any], dict[str, dict[str, Any]]], float | None]:
    def ratio(mine: dict[str, Any], summary: dict[str, dict[str, Any]]) -> float | None:
        theirs = summary.get("autolog", {}).get(key)
        if mine.get(key) is None or theirs is None or theirs <= 0:
            return None
        return float(mine[key]) / float(theirs)

    return ratio


def _vs_bare(key: str) -> Callable[[dict[str, Any], dict[str, dict[str, Any]]], float | None]:
    def ratio(mine: dict[str, Any], summary: dict[str, dict[str, Any]]) -> float | None:
        theirs = _median(summary.get("bare", {}), key)
        ours = _median(mine, key)
        return None if ours is None or not theirs else ours / theirs

    return ratio


def _memory(mine: dict[str, Any], summary: dict[str, dict[str, Any]]) -> float | None:
    used, output = mine.get("tracer_memory_kib"), mine.get("output_bytes")
    if used is None or output is None:
        return None
    return float(used) * 1024 / (3 * float(output) + MIB)


TARGETS = (
    Target(
        "added wall time per non-streaming call, / autolog's",
        0.25,
        True,
        _vs_autolog("chat_added_ms"),
    ),
    Target(
        "added CPU time per call (caller's process), / autolog's",
        0.25,
        True,
        _vs_autolog("chat_cpu_own_added_ms"),
    ),
    Target(
        "added CPU time per call (with the export process), / autolog's",
        0.25,
        True,
        _vs_autolog("chat_cpu_added_ms"),
    ),
    Target(
        "added CPU time per streamed call (with the export process), / autolog's",
        0.25,
        True,
        _vs_autolog("stream_cpu_added_ms"),
    ),
    Target("added time per streamed chunk, / autolog's", 0.25, True, _vs_autolog("chunk_added_us")),
    Target("time to first chunk, / bare", 1.10, True, _vs_bare("ttfc")),
    Target("concurrent async streams throughput, / bare", 0.85, False, _vs_bare("throughput")),
    Target("tracer peak memory, / (3 x output + 1 MiB)", 1.0, True, _memory),
    Target(
        "realistic: added wall time per non-streaming call, / autolog's",
        0.25,
        True,
        _vs_autolog("realistic_chat_added_ms"),
    ),
    Target(
        "realistic: added time per chunk, long streams, / autolog's",
        0.25,
        True,
        _vs_autolog("realistic_chunk_added_us"),
    ),
    Target(
        "realistic: added time per chunk, short streams, / autolog's",
        0.25,
        True,
        _vs_autolog("realistic_short_chunk_added_us"),
    ),
    Target("realistic: time to first chunk, / bare", 1.10, True, _vs_bare("realistic_ttfc")),
)


def targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target evaluated for each traced mode in ``summary``."""
    evaluated = []
    for target in TARGETS:
        row: dict[str, Any] = {"target": target.name, "limit": target.limit, "modes": {}}
        for mode, metrics in summary.items():
            if not mode.startswith("traced"):
                continue
            ratio = target.ratio(metrics, summary)
            met = None
            if ratio is not None:
                met = ratio <= target.limit if target.at_most else ratio >= target.limit
            row["modes"][mode] = {"ratio": ratio, "met": met}
        evaluated.append(row)
    return evaluated


# --- printing --------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"x{value:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [
        line(row) for row in rows
    ]


def render(summary: dict[str, dict[str, Any]], config: dict[str, Any]) -> list[str]:
    """The table of figures and the table of targets, as Markdown lines."""
    modes = list(summary)
    bare, autolog = summary.get("bare", {}), summary.get("autolog", {})
    rows: list[list[str]] = []
    for key, metric in METRICS.items():
        if not metric.shown:
            continue
        title = metric.label.format(**config)
        for mode in modes:
            stat = summary[mode].get(key)
            if stat is None:
                continue
            ours = float(stat["median"])
            vs_bare = _median(bare, key) if metric.ratios else None
            vs_autolog = _median(autolog, key) if metric.ratios else None
            rows.append(
                [
                    title,
                    mode,
                    _fmt(ours, metric.unit),
                    _fmt(float(stat["p90"]), metric.unit),
                    _ratio(ours / vs_bare if vs_bare else None),
                    _ratio(ours / vs_autolog if vs_autolog else None),
                ]
            )
            title = ""
    derived = (
        ("added wall time per non-streaming call", "chat_added_ms", "ms"),
        ("added CPU time per non-streaming call", "chat_cpu_added_ms", "ms"),
        ("added CPU time per non-streaming call, caller's process", "chat_cpu_own_added_ms", "ms"),
        ("added CPU time per {stream_chunks}-chunk streamed call", "stream_cpu_added_ms", "ms"),
        ("added time per streamed chunk", "chunk_added_us", "µs"),
        ("realistic: added wall time per non-streaming call", "realistic_chat_added_ms", "ms"),
        (
            "realistic: added time per chunk, {stream_chunks}-chunk streams",
            "realistic_chunk_added_us",
            "µs",
        ),
        (
            "realistic: added time per chunk, {ttfc_chunks}-chunk streams",
            "realistic_short_chunk_added_us",
            "µs",
        ),
        ("peak memory reading the long stream with the SDK", "sdk_memory_added_kib", "KiB"),
        ("tracer's peak memory (raw read)", "tracer_memory_kib", "KiB"),
    )
    for label, key, unit in derived:
        title = f"{label.format(**config)} (median - bare)"
        for mode in modes:
            if mode == "bare" or summary[mode].get(key) is None:
                continue
            ours = summary[mode][key]
            theirs = autolog.get(key)
            ratio = ours / theirs if theirs and theirs > 0 else None
            rows.append([title, mode, _fmt(ours, unit), "", "", _ratio(ratio)])
            title = ""
    output = bare.get("output_bytes") or next(
        (m.get("output_bytes") for m in summary.values() if m.get("output_bytes")), None
    )
    if output:
        rows.append(
            ["reassembled output of the long stream", "", _fmt(output / 1024, "KiB"), "", "", ""]
        )
    lines = _table(["workload", "mode", "median", "p90", "vs bare", "vs autolog"], rows)

    traced = [m for m in modes if m.startswith("traced")]
    target_rows = []
    for row in targets(summary):
        limit = ("≤ " if next(t for t in TARGETS if t.name == row["target"]).at_most else "≥ ") + (
            f"{row['limit']:.2f}"
        )
        cells = [row["target"], limit]
        for mode in traced:
            result = row["modes"][mode]
            if result["met"] is None:
                cells.append("n/a")
            else:
                verdict = "met" if result["met"] else "NOT MET"
                cells.append(f"{result['ratio']:.2f} {verdict}")
        target_rows.append(cells)
    lines += ["", *_table(["target (ratio of medians)", "limit", *traced], target_rows)]
    return lines


def passthrough_lines(result: dict[str, Any]) -> list[str]:
    """Workload 8 (:mod:`bench.passthrough`): non-LLM requests through an instrumented client,
    as a heading line and a Markdown table."""
    target = float(result["target"])
    rows = []
    for case in result["cases"]:
        bare, gated = case["variants"]["bare"], case["variants"]["instrumented"]
        verdict = "met" if case["met"] else "NOT MET"
        rows.append(
            [
                case["case"],
                f"{_fmt(bare['median_us'])} / {_fmt(bare['p90_us'], 'µs')}",
                f"{_fmt(gated['median_us'])} / {_fmt(gated['p90_us'], 'µs')}",
                f"x{case['ratio']:.3f} ({(case['ratio'] - 1) * 100:+.2f} %) {verdict}",
                f"x{case['control_ratio']:.3f} ({(case['control_ratio'] - 1) * 100:+.2f} %)",
                _fmt(case["added_us"], "µs"),
                _fmt(case["added_cpu_us"], "µs"),
            ]
        )
    header = [
        "non-LLM request",
        "bare: median / p90",
        "instrumented: median / p90",
        f"instrumented / bare (≤ {target:.2f})",
        "bare again / bare",
        "wall added",
        "CPU added",
    ]
    skipped = f"; not installed: {', '.join(result['skipped'])}" if result["skipped"] else ""
    heading = (
        f"Non-LLM requests through tracer.instrument() (loopback server in its own process): "
        f"{result['requests_per_variant']} requests per variant and client, in blocks of "
        f"{result['block']}, the variants taking turns; medians per request{skipped}"
    )
    return [heading, "", *_table(header, rows)]
