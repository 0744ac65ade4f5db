"""A pytest plugin for testing your own LLM code's tracing: the ``llm_spans`` fixture.

Installed with the package (entry point ``pytest11``). During a test that asks for
``llm_spans``, every span the tracer records is collected in memory — nothing goes to MLflow, so
no tracking store or network is needed — and can be asserted on by API, model, status and
content. It works with pytest-httpx's ``httpx_mock``, which answers below the tracer::

    def test_agent_answers(llm_spans, httpx_mock):
        httpx_mock.add_response(url="https://api.openai.com/v1/chat/completions", json=...)
        answer = my_agent("What is the capital of France?")
        span = llm_spans.one(api="chat.completions", model="gpt-4o-mini")
        assert span.status == "OK"
        assert "Paris" in span.outputs["choices"][0]["message"]["content"]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # importing MLflow is left to the tests that ask for the fixture
    from tracer.spans import SpanRecord

__all__ = ["LLMSpans", "llm_spans"]


class LLMSpans:
    """The spans recorded during one test, oldest first, with helpers to find them."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[SpanRecord]:
        return iter(self.spans)

    def __getitem__(self, index: int) -> SpanRecord:
        return self.spans[index]

    def filter(
        self,
        *,
        api: str | None = None,
        model: str | None = None,
        status: str | None = None,
        name: str | None = None,
        contains: str | None = None,
    ) -> list[SpanRecord]:
        """The spans matching every criterion given: the API (``chat.completions``,
        ``completions``, ``embeddings``, ``responses``, ``anthropic.messages``,
        ``images.generations``), the model, the status (``OK``/``ERROR``), the span name, and
        text their inputs or outputs contain."""
        return [
            span
            for span in self.spans
            if (api is None or span.api == api)
            and (model is None or span.model == model)
            and (status is None or span.status == status)
            and (name is None or span.name == name)
            and (contains is None or contains in span.text())
        ]

    def one(self, **criteria: Any) -> SpanRecord:
        """The single span matching ``criteria`` (see :meth:`filter`); fails the test if there
        is not exactly one."""
        found = self.filter(**criteria)
        if len(found) != 1:
            seen = [f"{s.name} [{s.status}]" for s in self.spans]
            pytest.fail(f"expected one LLM span matching {criteria}, found {len(found)}: {seen}")
        return found[0]

    def assert_recorded(self, count: int, **criteria: Any) -> list[SpanRecord]:
        """Fail the test unless exactly ``count`` spans match ``criteria``; return them."""
        found = self.filter(**criteria)
        if len(found) != count:
            seen = [f"{s.name} [{s.status}]" for s in self.spans]
            pytest.fail(
                f"expected {count} LLM span(s) matching {criteria}, found {len(found)}: {seen}"
            )
        return found


@pytest.fixture
def llm_spans() -> Iterator[LLMSpans]:
    """Collect, in memory, the LLM spans the tracer records during the test."""
    from tracer.spans import listening

    collected = LLMSpans()
    with listening(collected.spans.append, mlflow=False):
        yield collected
