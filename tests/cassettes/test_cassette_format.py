"""Properties of the cassette's file and matching (issue 22), with hypothesis: whatever the
bytes, a body or chunk written into a cassette comes back exact; a body encoded again for
replay decodes, chunk by chunk, to the chunks the SDK read; key order never matters."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracer._cassette_file import (
    LAYOUTS,
    body_of,
    bytes_of,
    decode_bytes,
    dumps,
    encode_bytes,
    parse,
)
from tracer._cassette_match import Ignore, comparable, stored_request
from tracer._cassette_wire import _encoded
from tracer.transport import HTTPX

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.binary())
def test_a_chunk_comes_back_exact(data: bytes) -> None:
    kept = encode_bytes(data)
    assert decode_bytes(json.loads(json.dumps(kept))) == data


@given(st.binary())
def test_any_body_comes_back_exact(data: bytes) -> None:
    assert bytes_of(json.loads(json.dumps(body_of(data)))) == data


@given(JSON, st.sampled_from(sorted(LAYOUTS)), st.booleans())
def test_a_json_body_is_kept_as_json_and_comes_back_exact(
    value: Any, layout: str, newline: bool
) -> None:
    raw = (json.dumps(value, **LAYOUTS[layout]) + ("\n" if newline else "")).encode()
    kept = body_of(raw)
    assert bytes_of(json.loads(json.dumps(kept))) == raw
    if isinstance(value, (dict, list)):
        assert "json" in kept  # readable in the file, not an escaped string


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=8))
@settings(max_examples=40)
def test_a_body_encoded_again_decodes_chunk_for_chunk(encoding: str, chunks: list[bytes]) -> None:
    pieces = _encoded(chunks, [encoding])
    assert pieces is not None
    factory = HTTPX.decoder_factory(httpx.Headers({"content-encoding": encoding}))
    assert factory is not None
    decoder = factory()
    decoded = [decoder.decode(piece) for piece in pieces]
    decoded[-1] += decoder.flush()
    assert decoded == (chunks or [b""])


@given(st.dictionaries(st.text(), JSON, max_size=6), st.randoms())
def test_key_order_never_matters(body: dict[str, Any], rng: random.Random) -> None:
    shuffled = dict(rng.sample(list(body.items()), len(body)))
    headers = httpx.Headers({"content-type": "application/json"})

    def key(value: dict[str, Any]) -> Any:
        request = stored_request("POST", "https://x/v1/chat", headers, json.dumps(value).encode())
        return comparable(request, Ignore())

    assert key(shuffled) == key(body)


def test_ignored_fields_and_patterns() -> None:
    ignore = Ignore.of(["user", "messages.*.name", "url.port"], [r"\d{2}:\d{2}"])
    headers = httpx.Headers({"content-type": "application/json"})

    def key(url: str, body: dict[str, Any]) -> Any:
        request = stored_request("POST", url, headers, json.dumps(body).encode())
        return comparable(request, ignore)

    one = {"user": "a", "messages": [{"role": "user", "name": "x", "content": "at 10:30 hi"}]}
    two = {"user": "b", "messages": [{"role": "user", "name": "y", "content": "at 11:45 hi"}]}
    other = {"user": "b", "messages": [{"role": "user", "name": "y", "content": "at 11:45 ho"}]}
    assert key("http://h:1/v1/chat", one) == key("http://h:2/v1/chat", two)
    assert key("http://h:1/v1/chat", one) != key("http://h:1/v1/chat", other)
    assert key("http://h:1/v1/chat?a=1&b=2", one) == key("http://h:1/v1/chat?b=2&a=1", one)
    with pytest.raises(ValueError, match="not a regular expression"):
        Ignore.of(patterns=["("])


@given(st.lists(st.fixed_dictionaries({"id": st.text(), "note": JSON}), max_size=4))
def test_the_file_reads_back_what_was_written(extra: list[dict[str, Any]]) -> None:
    exchanges = [
        {
            "id": item["id"],
            "request": {"method": "POST", "url": "https://x/v1/chat", "json": item["note"]},
            "response": {"status": 200, "headers": {}, "text": "ok"},
        }
        for item in extra
    ]
    assert parse(dumps(exchanges), Path("c.json")) == exchanges
