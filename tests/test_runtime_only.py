"""The production install: only the runtime dependencies (httpx, mlflow-tracing, pydantic) plus
the openai SDK, in a virtual environment of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the project (with its runtime dependencies only)
    and openai, installed from the package index (pip's cache makes it quick)."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT), "openai>=1.109,<4"],
        check=True,
        capture_output=True,
    )
    return python


def run(
    python: Path, code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(python.parent.parent), **(env or {})},
        cwd=python.parent,  # not the project root: import the installed package
    )


def test_only_runtime_dependencies_are_installed(runtime_python: Path) -> None:
    result = run(
        runtime_python,
        """
        import importlib.util, tracer, tracer.devserver
        print(tracer.__file__)
        for name in ("sqlalchemy", "flask", "pytest", "mlflow.server"):
            try:
                found = importlib.util.find_spec(name) is not None
            except ModuleNotFoundError:
                found = False
            print(name, found)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "site-packages" in lines[0]
    assert lines[1:] == ["sqlalchemy False", "flask False", "pytest False", "mlflow.server False"]


def test_no_tracking_uri_says_what_to_set_once(runtime_python: Path) -> None:
    result = run(
        runtime_python,
        """
        from openai import OpenAI
        from tracer import TracedClient
        from tracer.devserver import DevServer

        with DevServer() as server:
            client = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
            for _ in range(5):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                assert reply.choices[0].message.content
        print("calls ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "calls ok"
    assert result.stderr.count("no MLflow tracking URI is set") == 1, result.stderr
    assert "MLFLOW_TRACKING_URI" in result.stderr
    assert "Failed to start span" not in result.stderr  # MLflow's own per-call failure
