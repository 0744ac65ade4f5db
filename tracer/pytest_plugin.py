"""A pytest plugin for testing your own LLM code: the ``llm_spans`` fixture, and cassettes.

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

Cassettes (:mod:`tracer.cassettes`): a test marked ``@pytest.mark.llm_cassette`` has its LLM
calls recorded into a cassette on its first run and replayed from it afterwards, offline::

    @pytest.mark.llm_cassette
    def test_agent_answers(llm_spans):
        assert my_agent("What is the capital of France?") == "Paris"

The cassette is ``cassettes/<test module>/<test name>.json`` beside the test module, unless
the marker gives a path (``@pytest.mark.llm_cassette("shared.json")``, relative to the test
module's directory). The marker also takes ``mode``, ``ignore_fields``, ``ignore_patterns`` and
``pace`` (see :class:`tracer.cassettes.Cassette`). ``--llm-record-mode`` (``once`` by default,
``none`` in CI) overrides the marker's mode for the whole run. The ``llm_cassette`` fixture
gives the test its :class:`~tracer.cassettes.Cassette` (``None`` when it is not marked).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # importing MLflow is left to the tests that ask for the fixture
    from tracer.cassettes import Cassette
    from tracer.spans import SpanRecord

__all__ = ["LLMSpans", "llm_cassette", "llm_spans"]

_RECORD_MODES = ("once", "none", "new_episodes", "all")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--llm-record-mode``: the record mode of every ``llm_cassette`` test of the run."""
    group = parser.getgroup("llm-tracer")
    group.addoption(
        "--llm-record-mode",
        choices=_RECORD_MODES,
        default=None,
        help="record mode of the tests marked llm_cassette: once (the default: replay a "
        "cassette that exists, record one that does not), none (replay only: what CI uses), "
        "new_episodes (record what is missing) or all (record everything again)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``llm_cassette`` marker."""
    config.addinivalue_line(
        "markers",
        "llm_cassette(path=None, *, mode=None, ignore_fields=(), ignore_patterns=(), "
        "pace=False): record this test's LLM calls into a cassette, or replay them from it",
    )


def _default_path(node: pytest.Item) -> Path:
    module = Path(str(node.fspath))
    test = node.nodeid.split("::", 1)[-1].replace("::", ".")
    return module.parent / "cassettes" / module.stem / f"{_UNSAFE.sub('_', test).strip('_')}.json"


@pytest.fixture(autouse=True)
def _llm_cassette_marker(request: pytest.FixtureRequest) -> Iterator[Cassette | None]:
    marker = request.node.get_closest_marker("llm_cassette")
    if marker is None:
        yield None
        return
    from tracer.cassettes import cassette

    options = dict(marker.kwargs)
    given = options.pop("path", marker.args[0] if marker.args else None)
    path = _default_path(request.node)
    if given is not None:
        path = Path(str(request.node.fspath)).parent / Path(given)
    mode = request.config.getoption("--llm-record-mode") or options.pop("mode", None)
    options.pop("mode", None)
    with cassette(path, mode, **options) as tape:
        yield tape


@pytest.fixture
def llm_cassette(_llm_cassette_marker: Cassette | None) -> Cassette | None:
    """The cassette of a test marked ``llm_cassette`` (what it replayed and recorded), else
    ``None``."""
    return _llm_cassette_marker
