"""The server's own tests: one server for the session, on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llm_devserver import DevServer


@pytest.fixture(scope="session")
def server() -> Iterator[DevServer]:
    """The local LLM server, started once for these tests."""
    with DevServer() as srv:
        yield srv
