"""The public surface: traced clients, wrap(), configuration."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest
from llm_devserver import DevServer
from openai._base_client import _DefaultHttpxClient
from readback import only_llm_span
from sdk import QUESTION, Chat

import tracer
from tracer import (
    AsyncTracingTransport,
    TracedAsyncClient,
    TracedClient,
    TracerConfig,
    TracingTransport,
    wrap,
)


def test_public_surface_is_exactly_the_design() -> None:
    assert sorted(tracer.__all__) == sorted(
        [
            "TracedClient",
            "TracedAsyncClient",
            "wrap",
            "TracingTransport",
            "AsyncTracingTransport",
            "TracerConfig",
            "instrument",  # tracer.instrument(): every client of the process
            "uninstrument",
            "instrumented",
            "cassette",  # with tracer.cassette(path, mode=...): record and replay (issue 22)
            "CassetteMiss",
            "CassetteError",
        ]
    )
    for name in tracer.__all__:
        assert getattr(tracer, name).__doc__


@pytest.mark.parametrize("cls", [TracedClient, TracedAsyncClient])
def test_defaults_match_the_openai_sdk_client(cls: type) -> None:
    ours = cls()
    theirs = _DefaultHttpxClient()
    assert isinstance(ours, httpx.Client if cls is TracedClient else httpx.AsyncClient)
    assert ours.timeout.as_dict() == theirs.timeout.as_dict()
    assert ours.follow_redirects is theirs.follow_redirects is True
    pool = ours._transport.transport._pool  # type: ignore[union-attr]
    assert pool._max_connections == 1000
    assert pool._max_keepalive_connections == 100


def test_openai_keeps_the_clients_timeout() -> None:
    client = openai.OpenAI(
        api_key="x", base_url="http://127.0.0.1:1/v1", http_client=TracedClient()
    )
    assert client.timeout.as_dict() == openai.DEFAULT_TIMEOUT.as_dict()


def test_keyword_arguments_pass_through() -> None:
    inner = httpx.MockTransport(lambda request: httpx.Response(204))
    client = TracedClient(
        timeout=3.0, follow_redirects=False, headers={"x-a": "1"}, transport=inner
    )
    assert client.timeout == httpx.Timeout(3.0)
    assert client.follow_redirects is False
    assert client.headers["x-a"] == "1"
    assert isinstance(client._transport, TracingTransport)
    assert client._transport.transport is inner
    assert client.get("http://x/").status_code == 204


def test_mounts_are_wrapped_too() -> None:
    mounted = httpx.HTTPTransport()
    client = TracedClient(mounts={"http://internal": mounted})
    (transport,) = client._mounts.values()
    assert isinstance(transport, TracingTransport)
    assert transport.transport is mounted


def test_wrap_is_in_place_idempotent_and_returns_the_client() -> None:
    client = httpx.Client(mounts={"https://a": httpx.HTTPTransport()})
    config = TracerConfig(capture_content=False)
    assert wrap(client, config) is client
    first = client._transport
    mounts = dict(client._mounts)
    assert wrap(wrap(client)) is client
    assert client._transport is first
    assert client._mounts == mounts
    assert isinstance(first, TracingTransport)
    assert first.config is config
    assert all(isinstance(t, TracingTransport) for t in client._mounts.values())


def test_wrap_async_client() -> None:
    client = wrap(httpx.AsyncClient())
    assert isinstance(client._transport, AsyncTracingTransport)


def test_wrap_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"httpx\.Client"):
        wrap(object())  # type: ignore[type-var]


def test_config_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACER_ENABLED", "false")
    monkeypatch.setenv("TRACER_CAPTURE_CONTENT", "0")
    monkeypatch.setenv("TRACER_MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("TRACER_STRICT", "no")
    monkeypatch.setenv("TRACER_EXPORT", " None ")  # any case, as the booleans
    config = TracerConfig()
    assert config.export == "none"
    assert (config.enabled, config.capture_content, config.max_body_bytes, config.strict) == (
        False,
        False,
        1234,
        False,
    )
    assert TracerConfig(enabled=True).enabled is True  # explicit arguments win


def test_bad_environment_value_warns_and_uses_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACER_MAX_BODY_BYTES", "lots-of-bytes")
    with caplog.at_level(logging.WARNING, logger="tracer"):
        assert TracerConfig().max_body_bytes == 8 * 1024 * 1024
        assert TracerConfig().max_body_bytes == 8 * 1024 * 1024  # a second client
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # Once for the value, however many clients read it.
    assert len(warnings) == 1 and "TRACER_MAX_BODY_BYTES" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("MAX_BODY_BYTES", "-1", "greater than or equal to 0"),
        ("MAX_BODY_BYTES", "8MB", "valid integer"),
        ("ENABLED", "maybe", "valid boolean"),
        ("EXPORT", "sometimes", "'process', 'mlflow' or 'none'"),
        ("ROUTES", '{"(": "chat"}', "not a valid regular expression"),
        ("ROUTES", '{"/x$": "nope"}', "unknown API 'nope'"),
        ("ROUTES", "[1]", "should be an object"),
    ],
)
def test_environment_is_checked_by_the_fields_rules(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    value: str,
    rule: str,
) -> None:
    field = name.lower()
    default = TracerConfig.model_fields[field].get_default(call_default_factory=True)
    monkeypatch.setenv(f"TRACER_{name}", value)
    with caplog.at_level(logging.WARNING, logger="tracer"):
        assert getattr(TracerConfig(), field) == default
        assert getattr(TracerConfig(), field) == default
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"TRACER_{name}={value!r}" in warnings[0] and rule in warnings[0], warnings[0]
    with pytest.raises(ValueError):  # the same value as a keyword is an error
        TracerConfig(**{field: json.loads(value) if name == "ROUTES" else value})


def test_a_negative_max_body_bytes_in_the_environment_still_records_bodies(
    monkeypatch: pytest.MonkeyPatch, server: DevServer, experiment: str
) -> None:
    monkeypatch.setenv("TRACER_MAX_BODY_BYTES", "-1")
    Chat("sync", server.base_url).create()
    span = only_llm_span(experiment)
    assert span.inputs["messages"] == QUESTION
    assert span.outputs["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert "tracer.problems" not in span.attributes


def test_bad_explicit_value_is_rejected() -> None:
    with pytest.raises(ValueError):
        TracerConfig(max_body_bytes=-1)
    with pytest.raises(ValueError):
        TracerConfig(unknown=True)  # type: ignore[call-arg]


def test_httpx2_clients_and_wrap() -> None:
    import httpx2

    import tracer.httpx2

    client = tracer.httpx2.TracedClient(mounts={"http://internal": httpx2.HTTPTransport()})
    assert isinstance(client, httpx2.Client)
    assert isinstance(client._transport, tracer.httpx2.TracingTransport)
    assert all(isinstance(t, tracer.httpx2.TracingTransport) for t in client._mounts.values())
    assert client.timeout.as_dict() == openai.DEFAULT_TIMEOUT.as_dict()
    assert client.follow_redirects is True

    plain = httpx2.AsyncClient()
    assert wrap(wrap(plain)) is plain
    assert isinstance(plain._transport, tracer.httpx2.AsyncTracingTransport)
    assert isinstance(plain._transport.transport, httpx2.AsyncHTTPTransport)
