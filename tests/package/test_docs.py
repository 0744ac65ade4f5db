"""The documentation stays true to the code: the site builds in strict mode (no broken link or
anchor, no page left out of the navigation), and docs/configuration.md documents every
``TracerConfig`` field and every ``TRACER_*`` variable, with its default."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracer.config import ENV_PREFIX, TracerConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"


def tracer_variables() -> set[str]:
    """Every ``TRACER_*`` name in the tracer's source: written out, or built by
    ``config._from_env("NAME", ...)`` from the prefix."""
    names: set[str] = set()
    for path in sorted((ROOT / "tracer").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        names.update(re.findall(r"\bTRACER_[A-Z0-9_]*[A-Z0-9]", text))
        found = re.findall(r"_from_env\(\s*[\"']([A-Z0-9_]+)[\"']", text)
        names.update(ENV_PREFIX + name for name in found)
    return names


def table_row(text: str, variable: str) -> list[str]:
    """The cells of the Markdown table row that starts with ```variable```."""
    for line in text.splitlines():
        if line.startswith(f"| `{variable}` |"):
            return [cell.strip() for cell in line.strip().strip("|").split("|")]
    raise AssertionError(f"docs/configuration.md has no table row for {variable}")


def as_documented(value: Any) -> str:
    """A default value as the configuration page writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in sorted((ROOT / "docs").glob("*.md")):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built"


def test_every_tracer_variable_is_documented() -> None:
    variables = tracer_variables()
    assert {"TRACER_ENABLED", "TRACER_STRICT"} <= variables  # the search itself still works
    text = CONFIGURATION.read_text(encoding="utf-8")
    missing = sorted(name for name in variables if f"`{name}`" not in text)
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_every_config_field_is_documented() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    missing = sorted(name for name in TracerConfig.model_fields if f"`{name}`" not in text)
    assert not missing, f"docs/configuration.md does not document TracerConfig fields {missing}"


def test_documented_defaults_match_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    defaults = TracerConfig()
    text = CONFIGURATION.read_text(encoding="utf-8")
    variables = tracer_variables()
    checked = 0
    for field in TracerConfig.model_fields:
        variable = ENV_PREFIX + field.upper()
        if variable not in variables:
            continue  # no environment variable (redact)
        _, keyword, default, *_ = table_row(text, variable)
        assert keyword == f"`{field}`", (variable, keyword)
        expected = f"`{as_documented(getattr(defaults, field))}`"
        assert expected in default, f"{variable}: documented {default}, the code has {expected}"
        checked += 1
    assert checked, "no TRACER_* variable matched a TracerConfig field"


def documented_allow_lists() -> dict[tuple[str, str], list[str]]:
    """The fields docs/configuration.md lists as kept with content capture off, by API and
    side: ``{("chat", "request"): ["model", ...], ...}``."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    section = text.split("### `TRACER_CAPTURE_CONTENT`", 1)[1].split("\n### ", 1)[0]
    found: dict[tuple[str, str], list[str]] = {}
    api = None
    for line in section.splitlines():
        heading = re.match(r"#### `([a-z._]+)`", line)
        if heading:
            api = heading.group(1)
        side = re.match(r"- (request|response): (.*)", line)
        if side and api:
            found[(api, side.group(1))] = re.findall(r"`([^`]+)`", side.group(2))
    return found


def test_capture_off_allow_lists_match_the_code() -> None:
    from tracer.apis.keep import paths
    from tracer.routes import APIS

    documented = documented_allow_lists()
    expected = {
        (name, side): paths(api.kept_request if side == "request" else api.kept_response)
        for name, api in APIS.items()
        for side in ("request", "response")
    }
    assert set(documented) == set(expected)
    for key, fields in expected.items():
        assert documented[key] == fields, key
