"""No cross-talk under load: 1,000 concurrent async streams on one TracedAsyncClient and 32
threads on one TracedClient, every request with distinct content; every span matches its own
request and response, has the right parent, and none is lost."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import mlflow
import pytest
from llm_devserver import DevServer
from openai import AsyncOpenAI, OpenAI
from readback import read_traces

from tracer import TracedAsyncClient, TracedClient, spans
from tracer.spans import SpanRecord

STREAMS = 1000
THREADS = 32
CALLS_PER_THREAD = 4


@pytest.mark.e2e
def test_a_thousand_concurrent_async_streams(server: DevServer, experiment: str) -> None:
    async def main() -> list[str]:
        async with AsyncOpenAI(
            api_key="k", base_url=server.base_url, http_client=TracedAsyncClient(), max_retries=0
        ) as client:

            @mlflow.trace(name="task")
            async def ask(i: int) -> str:
                stream = await client.chat.completions.create(
                    model=f"model-{i % 7}",
                    messages=[{"role": "user", "content": f"question token-{i}"}],
                    stream=True,
                    extra_headers={"x-devserver-reply": f"answer {i} ok"},
                )
                return "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )

            @mlflow.trace(name="fan_out")
            async def fan_out() -> list[str]:
                return list(await asyncio.gather(*(ask(i) for i in range(STREAMS))))

            return await fan_out()

    answers = asyncio.run(main())
    assert answers == [f"answer {i} ok" for i in range(STREAMS)]
    (trace,) = read_traces(experiment)
    spans = trace.data.spans
    by_id = {s.span_id: s for s in spans}
    llm = [s for s in spans if s.span_type == "CHAT_MODEL"]
    assert len(llm) == STREAMS  # none lost
    assert len([s for s in spans if s.name == "task"]) == STREAMS
    for span in llm:
        i = by_id[span.parent_id].inputs["i"]  # the task that made this call
        assert span.inputs["messages"][0]["content"] == f"question token-{i}"
        assert span.name == f"chat model-{i % 7}"
        assert span.outputs["choices"][0]["message"]["content"] == f"answer {i} ok"
        assert span.attributes["stream.completed"] is True
        assert by_id[by_id[span.parent_id].parent_id].name == "fan_out"


def test_thirty_two_threads_on_one_client(server: DevServer, experiment: str) -> None:
    # The tracer's own records (spans.listening) and the store both: the export process writes
    # what 32 threads recorded at once.
    records: list[SpanRecord] = []
    client = OpenAI(api_key="k", base_url=server.base_url, http_client=TracedClient())
    errors: list[BaseException] = []
    roots: dict[int, tuple[str, str]] = {}

    @mlflow.trace(name="worker")
    def worker(t: int) -> None:
        root = mlflow.get_current_active_span()
        assert root is not None
        roots[t] = (root.trace_id, root.span_id)
        for c in range(CALLS_PER_THREAD):
            tag = f"{t}-{c}"
            kwargs: dict[str, Any] = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"q {tag}"}],
                "extra_headers": {"x-devserver-reply": f"a {tag}"},
            }
            if c % 2:
                stream = client.chat.completions.create(**kwargs, stream=True)
                text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
            else:
                text = client.chat.completions.create(**kwargs).choices[0].message.content or ""
            assert text == f"a {tag}"

    def run(t: int) -> None:
        try:
            worker(t)
        except BaseException as exc:
            errors.append(exc)

    with spans.listening(records.append):
        threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(records) == THREADS * CALLS_PER_THREAD  # none lost
    assert len(roots) == THREADS
    for record in records:
        tag = record.inputs["messages"][0]["content"].removeprefix("q ")
        t = int(tag.split("-")[0])
        assert record.outputs["choices"][0]["message"]["content"] == f"a {tag}"
        assert (record.trace_id, record.parent_id) == roots[t]  # its own thread's span
    stored = read_traces(experiment)
    assert sorted(t.info.trace_id for t in stored) == sorted(r[0] for r in roots.values())
    for trace in stored:
        assert [s.name for s in trace.data.spans].count("chat gpt-4o-mini") == CALLS_PER_THREAD
