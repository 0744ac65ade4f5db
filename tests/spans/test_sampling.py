"""Keep-by-outcome sampling (issue 23, ``TRACER_SAMPLE``): through the real openai SDK and
read back from the MLflow store, every error, slow or token-heavy call is kept, a ratio of the
rest, what is left out is counted, and a span inside a trace of the caller's is never dropped."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import openai
import pytest
from llm_devserver import DevServer
from readback import read_spans, read_traces

import tracer.export
from tracer import TracedClient, TracerConfig
from tracer.sampling import SampleRule

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def client(server: DevServer, sample: Any, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url,
        api_key="k",
        max_retries=0,
        http_client=TracedClient(config=TracerConfig(sample=sample)),
        default_headers=headers,
    )


def ask(llm: openai.OpenAI, **kwargs: Any) -> Any:
    return llm.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, **kwargs)  # type: ignore[arg-type]


def test_errors_slow_and_heavy_calls_are_kept_and_the_rest_left_out(
    server: DevServer, experiment: str
) -> None:
    rule = "ratio=0,slower_than=150ms,tokens_over=5000"
    before = tracer.export.stats()
    for _ in range(4):
        ask(client(server, rule))  # fast, light, fine: left out
    with pytest.raises(openai.InternalServerError):
        ask(client(server, rule, **{"x-devserver-status": "500"}))
    slow = client(server, rule, **{"x-devserver-chunk-delay-ms": "20"})
    list(ask(slow, stream=True))  # about 30 chunks, 20 ms apart
    heavy = client(server, "ratio=0,tokens_over=10")
    ask(heavy)
    spans = read_spans(experiment)
    assert sorted(s.get_attribute("tracer.sample.reason") for s in spans) == [
        "error",
        "slow",
        "tokens",
    ]
    assert all(s.get_attribute("tracer.sample.ratio") == 0 for s in spans)
    after = tracer.export.stats()
    assert after["sampled_out"] - before["sampled_out"] == 4
    # the kept ones went through the export process, whose counters stats() also gives
    assert after["written"] - before.get("written", 0) >= 3 and after["failed"] == 0


def test_a_ratio_keeps_about_that_share(server: DevServer, experiment: str) -> None:
    before = tracer.export.stats()["sampled_out"]
    llm = client(server, SampleRule(ratio=0.5))
    for _ in range(40):
        ask(llm)
    kept = len(read_traces(experiment))
    assert kept + tracer.export.stats()["sampled_out"] - before == 40
    assert 5 <= kept <= 35  # binomial(40, 0.5): outside this once in ten million runs


def test_a_span_inside_the_callers_trace_is_never_left_out(
    server: DevServer, experiment: str
) -> None:
    llm = client(server, "ratio=0")

    @mlflow.trace
    def agent() -> str:
        return ask(llm).choices[0].message.content or ""

    agent()
    traces = read_traces(experiment)
    assert len(traces) == 1 and len(traces[0].data.spans) == 2


def test_the_rule_as_text_and_its_mistakes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rule = SampleRule.model_validate("ratio=0.25, slower_than=2s, tokens_over=4000, errors=false")
    assert rule == SampleRule(ratio=0.25, slower_than_ms=2000, tokens_over=4000, errors=False)
    monkeypatch.setenv("TRACER_SAMPLE", "ratio=0.1,slower_than=500ms")
    assert TracerConfig().sample == SampleRule(ratio=0.1, slower_than_ms=500)
    monkeypatch.setenv("TRACER_SAMPLE", "ratio=2")
    with caplog.at_level(logging.WARNING, logger="tracer"):
        assert TracerConfig().sample is None
    assert "ignoring TRACER_SAMPLE='ratio=2'" in caplog.text
    monkeypatch.setenv("TRACER_SAMPLE", "keep=everything")
    assert TracerConfig().sample is None
    monkeypatch.delenv("TRACER_SAMPLE")
    assert TracerConfig().sample is None
