"""Workload 8 of ``make bench``: what :func:`tracer.instrument` costs requests that are not LLM
calls.

Under :func:`tracer.instrument`, every request of an ``httpx`` / ``httpx2`` client goes through
the tracer's gate (``tracer.instrumentation._SyncGate`` / ``_AsyncGate``), which sends a request
that no route matches straight to the client's transport; an ``aiohttp`` POST whose path is not
an LLM route goes on without the tracer's middleware. The target: such a request costs at most
2 % more than a bare one (:data:`TARGET`), and passes through byte for byte.

Measured in the benchmark's parent process, before anything else runs, against
``bench/loopback.py`` (a minimal HTTP/1.1 server on 127.0.0.1, in a process of its own, that
answers each request with the SHA-256 of its bytes as they arrived). For each client (httpx,
httpx async, httpx2, httpx2 async, aiohttp; those not installed are skipped) and each request
(:data:`REQUESTS`: a GET of a small JSON document, a POST of a small JSON body to
``/v1/files``), one client, one keep-alive connection, three variants:

- ``bare``: the client as it is;
- ``instrumented``: the same client after :func:`tracer.instrument` (with its default
  configuration), :func:`tracer.uninstrument` after;
- ``bare again``: the client as it is, measured exactly as ``bare``: the noise floor (its ratio
  to ``bare`` is what the machine's drift and noise alone give).

The variants take turns in blocks of :data:`BLOCK` requests, their order rotating from cycle to
cycle (each variant is first, second and third equally often), so that drift on the machine hits
all three alike. Each block starts with one request that is not timed (the first request after
:func:`tracer.instrument` builds its configuration) and whose answer must equal the first bare
answer byte for byte: the request arrived with the same bytes, and the answer came back whole.
Wall time of each request with ``time.perf_counter``, CPU time of the process per request over
each block with ``time.process_time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.util
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.report import percentile

#: The requests: method, path, JSON body (``None``: no body). Neither is an LLM route.
REQUESTS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("GET", "/health", None),
    ("POST", "/v1/files", {"purpose": "batch", "filename": "requests.jsonl", "bytes": 1024}),
)
#: The clients: library, async or not.
CLIENTS: tuple[tuple[str, bool], ...] = (
    ("httpx", False),
    ("httpx", True),
    ("httpx2", False),
    ("httpx2", True),
    ("aiohttp", True),
)
VARIANTS = ("bare", "instrumented", "bare again")
#: Requests in a block (fewer with fewer requests).
BLOCK = 50
#: Instrumented / bare, at most (medians of the wall time per request).
TARGET = 1.02

#: What a request got back: the status and the body.
Answer = tuple[int, bytes]


@dataclass(frozen=True)
class Case:
    """One client and one request."""

    library: str
    is_async: bool
    method: str
    path: str
    body: dict[str, Any] | None

    @property
    def name(self) -> str:
        return f"{self.library}{' async' if self.is_async else ''} {self.method} {self.path}"

    @property
    def kwargs(self) -> dict[str, Any]:
        return {} if self.body is None else {"json": self.body}


def cases() -> tuple[list[Case], list[str]]:
    """The cases of the libraries installed, and the libraries skipped."""
    found, skipped = [], []
    for library, is_async in CLIENTS:
        if importlib.util.find_spec(library) is None:
            if library not in skipped:
                skipped.append(library)
            continue
        for method, path, body in REQUESTS:
            found.append(Case(library, is_async, method, path, body))
    return found, skipped


def plan(requests: int) -> tuple[int, int]:
    """``(block, cycles)`` for at least ``requests`` requests per variant and case; cycles a
    multiple of the variants, so each order of them runs equally often."""
    block = max(1, min(BLOCK, requests // len(VARIANTS)))
    cycles = math.ceil(max(1, requests) / block)
    cycles += -cycles % len(VARIANTS)
    return block, cycles


def _orders(cycles: int) -> Iterator[tuple[str, ...]]:
    for cycle in range(cycles):
        shift = cycle % len(VARIANTS)
        yield VARIANTS[shift:] + VARIANTS[:shift]


@contextlib.contextmanager
def _variant(name: str) -> Iterator[None]:
    import tracer

    if name != "instrumented":
        yield
        return
    tracer.instrument()
    try:
        yield
    finally:
        tracer.uninstrument()


def _gated(case: Case, client: Any) -> bool:
    """Whether the client's requests now go through the tracer (so that the instrumented
    variant measures the gate, not nothing)."""
    module = importlib.import_module(case.library)
    if case.library == "aiohttp":
        return hasattr(module.ClientSession._request, "__wrapped__")
    return type(client._transport_for_url(client.base_url)).__name__.endswith("Gate")


def _check(answer: Answer, reference: Answer, case: Case, variant: str) -> None:
    if answer != reference:
        raise RuntimeError(
            f"{case.name}, {variant}: the answer differs from the bare one "
            f"({answer[0]} {answer[1][:200]!r} against {reference[0]} {reference[1][:200]!r})"
        )


Samples = dict[str, tuple[list[list[float]], list[float]]]


# --- sync clients ----------------------------------------------------------------------------


def _run_sync(case: Case, root: str, block: int, cycles: int) -> Samples:
    module = importlib.import_module(case.library)
    client = module.Client(base_url=root, trust_env=False)
    kwargs = case.kwargs

    def send() -> Answer:
        response = client.request(case.method, case.path, **kwargs)
        return response.status_code, response.content

    try:
        reference = send()  # opens the connection
        for _ in range(block):
            _check(send(), reference, case, "warm-up")
        samples: Samples = {variant: ([], []) for variant in VARIANTS}
        gc.collect()
        for order in _orders(cycles):
            for variant in order:
                with _variant(variant):
                    if variant == "instrumented" and not _gated(case, client):
                        raise RuntimeError(f"{case.name}: tracer.instrument() did not reach it")
                    _check(send(), reference, case, variant)
                    clock, cpu_clock = time.perf_counter, time.process_time
                    walls = []
                    cpu = cpu_clock()
                    for _ in range(block):
                        started = clock()
                        send()
                        walls.append(clock() - started)
                    cpu = cpu_clock() - cpu
                samples[variant][0].append(walls)
                samples[variant][1].append(cpu / block)
        return samples
    finally:
        client.close()


# --- async clients ---------------------------------------------------------------------------


async def _async_client(case: Case, root: str) -> tuple[Any, Callable[[], Awaitable[Answer]]]:
    module = importlib.import_module(case.library)
    kwargs = case.kwargs
    if case.library == "aiohttp":
        session = module.ClientSession(base_url=root)

        async def send_aiohttp() -> Answer:
            async with session.request(case.method, case.path, **kwargs) as response:
                return response.status, await response.read()

        return session, send_aiohttp
    client = module.AsyncClient(base_url=root, trust_env=False)

    async def send_httpx() -> Answer:
        response = await client.request(case.method, case.path, **kwargs)
        return response.status_code, response.content

    return client, send_httpx


async def _run_async(case: Case, root: str, block: int, cycles: int) -> Samples:
    client, send = await _async_client(case, root)
    try:
        reference = await send()
        for _ in range(block):
            _check(await send(), reference, case, "warm-up")
        samples: Samples = {variant: ([], []) for variant in VARIANTS}
        gc.collect()
        for order in _orders(cycles):
            for variant in order:
                with _variant(variant):
                    if variant == "instrumented" and not _gated(case, client):
                        raise RuntimeError(f"{case.name}: tracer.instrument() did not reach it")
                    _check(await send(), reference, case, variant)
                    clock, cpu_clock = time.perf_counter, time.process_time
                    walls = []
                    cpu = cpu_clock()
                    for _ in range(block):
                        started = clock()
                        await send()
                        walls.append(clock() - started)
                    cpu = cpu_clock() - cpu
                samples[variant][0].append(walls)
                samples[variant][1].append(cpu / block)
        return samples
    finally:
        if case.library == "aiohttp":
            await client.close()
        else:
            await client.aclose()


# --- the workload ----------------------------------------------------------------------------


def _summary(case: Case, samples: Samples, block: int) -> dict[str, Any]:
    variants: dict[str, dict[str, Any]] = {}
    for variant, (blocks, cpus) in samples.items():
        walls = [wall for one in blocks for wall in one]
        variants[variant] = {
            "requests": len(walls),
            "median_us": statistics.median(walls) * 1e6,
            "p90_us": percentile(walls, 90) * 1e6,
            "cpu_us_per_request": statistics.median(cpus) * 1e6,
            "block_medians_us": [statistics.median(one) * 1e6 for one in blocks],
            "block_cpu_us_per_request": [cpu * 1e6 for cpu in cpus],
        }
    bare, gated, again = (variants[v] for v in VARIANTS)
    ratio = gated["median_us"] / bare["median_us"]
    return {
        "case": case.name,
        "library": case.library,
        "async": case.is_async,
        "method": case.method,
        "path": case.path,
        "block": block,
        "variants": variants,
        "ratio": ratio,
        "met": ratio <= TARGET,
        "control_ratio": again["median_us"] / bare["median_us"],
        "added_us": gated["median_us"] - bare["median_us"],
        "added_cpu_us": gated["cpu_us_per_request"] - bare["cpu_us_per_request"],
    }


def measure(root: str, requests: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every case against the server at ``root``, ``requests`` (at least) per variant."""
    import tracer

    if tracer.instrumented():
        raise RuntimeError("tracer.instrument() is already in effect: nothing would be bare")
    block, cycles = plan(requests)
    found, skipped = cases()
    results = []
    started = time.perf_counter()
    for case in found:
        began = time.perf_counter()
        if case.is_async:
            samples = asyncio.run(_run_async(case, root, block, cycles))
        else:
            samples = _run_sync(case, root, block, cycles)
        result = _summary(case, samples, block)
        results.append(result)
        bare, gated = (result["variants"][v]["median_us"] for v in VARIANTS[:2])
        progress(
            f"  {case.name:<28} bare {bare:.0f} µs, instrumented {gated:.0f} µs "
            f"({(result['ratio'] - 1) * 100:+.1f} %; bare again "
            f"{(result['control_ratio'] - 1) * 100:+.1f} %)  ({time.perf_counter() - began:.1f} s)"
        )
    return {
        "server": "bench/loopback.py (own process)",
        "requests_per_variant": block * cycles,
        "block": block,
        "cycles": cycles,
        "target": TARGET,
        "skipped": skipped,
        "elapsed_s": time.perf_counter() - started,
        "cases": results,
    }
