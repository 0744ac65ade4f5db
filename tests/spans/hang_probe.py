"""Run in a subprocess by test_never_hang.py: a program that leaves streams unfinished, as
programs do (``for chunk in stream: break``, the stream never closed), then makes an ordinary
call, and exits. With the tracer ending such a stream's span from its finalizer, a collection
that happened inside MLflow's tracer set-up (which holds a non-reentrant lock) hung it for
ever.

Usage: hang_probe.py TRACKING_URI OPTIONS... (each option a word):

- ``async``: ``AsyncOpenAI`` (else ``OpenAI``);
- ``warm``: one complete call first, so MLflow is set up before any stream is abandoned
  (else the abandoned streams meet the process's first span);
- ``switch=URI``: ``mlflow.set_tracking_uri(URI)`` while the abandoned streams wait to be
  collected (MLflow sets its tracer up again at the next span);
- ``threshold1``: ``gc.set_threshold(1)``: a collection at almost every allocation;
- ``collect-in-setup``: a collection forced inside MLflow's tracer set-up, while it holds its
  lock, with the abandoned streams waiting to be collected;
- ``collect-in-pool``: a collection forced inside httpcore's connection pool, while it holds
  its (non-reentrant) lock: the SDK's stream generators freed there close their responses;
- ``hold``: one more stream, half read, still referenced (and open) at exit;
- ``bare``: plain httpx clients, no tracer (to compare).

Prints one JSON line: the reply, how many collections ran while MLflow's set-up lock was
held, and how many of those freed something.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import json
import sys
from typing import Any

import httpx
import mlflow
from llm_devserver import DevServer
from openai import AsyncOpenAI, OpenAI

from tracer import TracedAsyncClient, TracedClient

faulthandler.dump_traceback_later(150, exit=True)  # a hang prints every thread, then exits 1

ABANDONED = 3
QUESTION = [{"role": "user", "content": "Tell me something long"}]
STREAM: dict[str, Any] = {"model": "gpt-4o-mini", "messages": QUESTION, "stream": True}
_held: list[Any] = []  # referenced until exit


def main() -> None:
    uri, options = sys.argv[1], sys.argv[2:]
    switch = next((o.split("=", 1)[1] for o in options if o.startswith("switch=")), None)
    mlflow.set_tracking_uri(uri)
    hostile = Hostile()
    if "collect-in-setup" in options:
        hostile.collect_inside_mlflow_setup()
    if "collect-in-pool" in options:
        hostile.collect_inside_the_connection_pool()
    hostile.watch_collections()
    if "threshold1" in options:
        gc.set_threshold(1)
    with DevServer() as server:
        run = run_async if "async" in options else run_sync
        reply = run(server.base_url, options, switch)
    print(json.dumps({"reply": reply, **hostile.report()}), flush=True)


def run_sync(base_url: str, options: list[str], switch: str | None) -> str:
    http_client = httpx.Client() if "bare" in options else TracedClient()
    client = OpenAI(base_url=base_url, api_key="k", http_client=http_client)
    if "warm" in options:
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    for _ in range(ABANDONED):
        stream = client.chat.completions.create(**STREAM)
        for _chunk in stream:
            break  # and never closed: a reference cycle, freed whenever the collector runs
    del stream
    if "hold" in options:
        held = client.chat.completions.create(**STREAM)
        iterator = iter(held)
        next(iterator)
        _held.append((held, iterator))
    if switch is not None:
        mlflow.set_tracking_uri(switch)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    return reply.choices[0].message.content or ""


def run_async(base_url: str, options: list[str], switch: str | None) -> str:
    async def calls() -> str:
        http_client = httpx.AsyncClient() if "bare" in options else TracedAsyncClient()
        client = AsyncOpenAI(base_url=base_url, api_key="k", http_client=http_client)
        if "warm" in options:
            await client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        for _ in range(ABANDONED):
            stream = await client.chat.completions.create(**STREAM)
            async for _chunk in stream:
                break
        del stream
        if "hold" in options:
            held = await client.chat.completions.create(**STREAM)
            iterator = held.__aiter__()
            await iterator.__anext__()
            _held.append((held, iterator))
        if switch is not None:
            mlflow.set_tracking_uri(switch)
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        return reply.choices[0].message.content or ""

    return asyncio.run(calls())


class Hostile:
    """Garbage collection at the worst moments, and a count of those moments."""

    def __init__(self) -> None:
        self.inside_setup = 0  # collections while MLflow's set-up lock was held
        self.freed_inside_setup = 0  # ... that freed something
        self.freed_inside_pool = 0  # forced collections in the pool's lock that freed something
        self._in_setup = False

    def collect_inside_mlflow_setup(self) -> None:
        """Wrap MLflow's tracer set-up (run under its ``Once`` lock) with a full collection,
        where the abandoned streams are freed and their finalizers run."""
        from mlflow.tracing import provider

        setup = provider._initialize_tracer_provider

        def collecting_setup(*args: Any, **kwargs: Any) -> Any:
            self._in_setup = True
            try:
                gc.collect()
                return setup(*args, **kwargs)
            finally:
                self._in_setup = False

        provider._initialize_tracer_provider = collecting_setup

    def collect_inside_the_connection_pool(self) -> None:
        """Wrap the step httpcore runs under its pool's lock with a full collection."""
        from httpcore._sync.connection_pool import ConnectionPool

        assign = ConnectionPool._assign_requests_to_connections

        def collecting_assign(pool: Any) -> Any:
            if gc.collect():
                self.freed_inside_pool += 1
            return assign(pool)

        ConnectionPool._assign_requests_to_connections = collecting_assign  # type: ignore[method-assign]

    def watch_collections(self) -> None:
        """Count, with ``gc.callbacks``, the collections that ran inside MLflow's set-up."""
        from mlflow.tracing import provider

        def on_collection(phase: str, info: dict[str, int]) -> None:
            if phase != "stop":
                return
            once = provider.provider.once
            lock = getattr(once, "_Once__lock", None)
            if self._in_setup or (lock is not None and lock.locked()):
                self.inside_setup += 1
                self.freed_inside_setup += info.get("collected", 0) > 0

        gc.callbacks.append(on_collection)

    def report(self) -> dict[str, int]:
        return {
            "inside_setup": self.inside_setup,
            "freed_inside_setup": self.freed_inside_setup,
            "freed_inside_pool": self.freed_inside_pool,
        }


if __name__ == "__main__":
    main()
