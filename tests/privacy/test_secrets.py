"""Credentials in URLs are masked by rule, not by list: in ``url.full``, in a ``Location``
header, and in URLs inside recorded bodies; credential fields inside bodies likewise. Every
stored trace is scanned whole, as exported JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from llm_devserver import DevServer
from openai import OpenAI
from rawserver import RawServer, head
from readback import only_llm_span, read_spans, stored

from tracer import TracedClient
from tracer.redact import REDACTED, is_secret_param, mask_urls, safe_url, scrub


@pytest.mark.parametrize(
    "name",
    [
        "key",
        "api_key",
        "API-KEY",
        "apiKey",
        "subscription-key",
        "Ocp-Apim-Subscription-Key",
        "token",
        "access_token",
        "accessToken",
        "refresh-token",
        "secret",
        "client_secret",
        "signature",
        "Signature",
        "sig",
        "url_sig",
        "credential",
        "password",
        "PWD",
        "auth",
        "Authorization",
        "code",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Amz-Date",
        "x-amz-expires",
        "X-Goog-Signature",
        "X-Goog-Credential",
        "AWSAccessKeyId",
        "api%5Fkey",  # percent-encoded
        "jwt",
    ],
)
def test_names_that_suggest_a_secret(name: str) -> None:
    assert is_secret_param(name)


@pytest.mark.parametrize(
    "name", ["api-version", "model", "stream", "format", "limit", "alt", "se", "sp", "sv", "page"]
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_param(name)


def test_safe_url_masks_values_and_keeps_the_rest_byte_for_byte() -> None:
    url = (
        "https://user:p%40ss@gw.example.com:8443/openai/v1/chat/completions"
        "?api-version=2024-10-21&subscription-key=abc%2Fdef&q=a+b%20c&flag&X-Amz-Signature=f00"
        "#access_token=tok&state=x"
    )
    assert safe_url(url) == (
        "https://gw.example.com:8443/openai/v1/chat/completions"
        "?api-version=2024-10-21&subscription-key=REDACTED&q=a+b%20c&flag&X-Amz-Signature=REDACTED"
        "#access_token=REDACTED&state=x"
    )
    assert safe_url("/relative/path?sig=x&a=1") == "/relative/path?sig=REDACTED&a=1"
    assert safe_url("https://host/p") == "https://host/p"


@given(st.text(), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8))
def test_safe_url_never_raises_and_never_keeps_a_secret(noise: str, secret: str) -> None:
    url = f"https://h/{noise}?x=1&api_key={secret}"
    masked = safe_url(url)
    assert f"api_key={secret}" not in masked
    assert isinstance(safe_url(noise), str)


def test_urls_inside_text_and_credential_fields_are_masked() -> None:
    text = "See https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=s3cr3t&x=1, then reply."
    assert mask_urls(text) == (
        "See https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=REDACTED&x=1, then reply."
    )
    value = {"tools": [{"type": "mcp", "authorization": "tok", "headers": {"X-Api-Key": "k"}}]}
    assert scrub(value) == {
        "tools": [{"type": "mcp", "authorization": REDACTED, "headers": {"X-Api-Key": REDACTED}}]
    }
    assert scrub({"max_tokens": 5, "token": "Hello"}) == {"max_tokens": 5, "token": "Hello"}


def test_secrets_in_every_url_of_an_sdk_call_never_reach_the_store(
    server: DevServer, experiment: str
) -> None:
    secrets = {
        name: f"SECRET-{i}-{name}-q9"
        for i, name in enumerate(
            [
                "user",
                "pw",
                "subscription",
                "credential",
                "security",
                "signature",
                "goog",
                "access",
                "image-sig",
                "image-cred",
                "reply-token",
            ]
        )
    }
    client = OpenAI(
        api_key="sk-whatever",
        base_url=f"http://{secrets['user']}:{secrets['pw']}@127.0.0.1:{server.port}/v1",
        http_client=TracedClient(),
        max_retries=0,
        default_query={
            "api-version": "2024-10-21",
            "subscription-key": secrets["subscription"],
            "X-Amz-Credential": secrets["credential"],
            "X-Amz-Security-Token": secrets["security"],
            "X-Amz-Signature": secrets["signature"],
            "X-Goog-Signature": secrets["goog"],
            "accessToken": secrets["access"],
        },
    )
    image = (
        "https://bucket.s3.amazonaws.com/cat.png"
        f"?X-Amz-Signature={secrets['image-sig']}&X-Amz-Credential={secrets['image-cred']}"
    )
    reply = f"Here: https://files.example.com/report.pdf?token={secrets['reply-token']}"
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
        extra_headers={"x-devserver-reply": reply},
    )
    assert secrets["subscription"] in server.requests[-1].path  # they really were sent
    dump = stored(experiment)
    assert "chat gpt-4o-mini" in dump
    for name, secret in secrets.items():
        assert secret not in dump, name
    span = only_llm_span(experiment)
    assert span.attributes["url.full"] == (
        f"http://127.0.0.1:{server.port}/v1/chat/completions?api-version=2024-10-21"
        "&subscription-key=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED"
        "&X-Amz-Signature=REDACTED&X-Goog-Signature=REDACTED&accessToken=REDACTED"
    )
    recorded_image = span.inputs["messages"][0]["content"][1]["image_url"]["url"]
    assert recorded_image == (
        "https://bucket.s3.amazonaws.com/cat.png?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED"
    )
    assert span.outputs["choices"][0]["message"]["content"] == (
        "Here: https://files.example.com/report.pdf?token=REDACTED"
    )


def test_mcp_tool_credentials_never_reach_the_store(server: DevServer, experiment: str) -> None:
    client = OpenAI(
        api_key="k", base_url=server.base_url, http_client=TracedClient(), max_retries=0
    )
    client.responses.create(
        model="gpt-4o",
        input="What is on my calendar?",
        tools=[
            {
                "type": "mcp",
                "server_label": "calendar",
                "server_url": "https://mcp.example.com/sse?api_key=SECRET-mcp-url-q9",
                "authorization": "SECRET-mcp-oauth-q9",
                "headers": {"Authorization": "Bearer SECRET-mcp-header-q9"},
                "require_approval": "never",
            }
        ],
    )
    dump = stored(experiment)
    assert "calendar" in dump  # the tool is recorded, its credentials are not
    assert "SECRET-mcp" not in dump


@pytest.fixture
def raw() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv


def test_location_header_is_recorded_masked(raw: RawServer, experiment: str) -> None:
    target = "https://u:p@other.example.com/v1/chat/completions?sig=SECRET-location-q9&a=1"
    raw.respond([head(307, "Temporary Redirect", [("Location", target), ("Content-Length", "0")])])
    with TracedClient() as client:
        response = client.post(
            raw.url + "/v1/chat/completions",
            json={"model": "m", "messages": []},
            follow_redirects=False,
        )
    assert response.status_code == 307 and response.headers["location"] == target
    (span,) = read_spans(experiment)
    assert span.attributes["http.response.header.location"] == (
        "https://other.example.com/v1/chat/completions?sig=REDACTED&a=1"
    )
    assert "SECRET-location" not in stored(experiment)
