"""The server's command: ``llm-devserver`` and ``python -m llm_devserver``."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_llm_devserver_prints_its_url_and_serves_until_ctrl_c() -> None:
    command = str(Path(sys.executable).with_name("llm-devserver"))
    process = subprocess.Popen(
        [command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)  # a bound on the start-up
        assert ready, "llm-devserver printed no URL within 60 s"
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1"), base_url
        health = httpx.get(base_url.removesuffix("/v1") + "/health", timeout=10)
        assert health.json() == {"status": "ok"}
        reply = httpx.post(
            f"{base_url}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"Authorization": "Bearer test"},
            timeout=10,
        )
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_python_m_llm_devserver_help() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "llm_devserver", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: python -m llm_devserver")
    assert "--port" in helped.stdout
