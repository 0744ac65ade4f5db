"""The package reads as its layers (docs/architecture.md): every import, also one inside a
function, goes to a layer below its own or stays in its layer, and no import closes a circle."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The layers, top to bottom, by module name (the table of docs/architecture.md).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "entry points",
        (
            "tracer",
            "tracer.__main__",
            "tracer.cli",
            "tracer.show",
            "tracer.pytest_plugin",
            "tracer.devserver",
            "tracer._bootstrap.sitecustomize",
        ),
    ),
    ("reach", ("tracer.instrumentation", "tracer._aiohttp", "tracer._aiohttp_content")),
    ("clients", ("tracer.client", "tracer.httpx2")),
    ("transports", ("tracer.transport", "tracer._httpx2_transport")),
    (
        "cassettes",
        (
            "tracer._cassette_wire",
            "tracer.cassettes",
            "tracer._cassette_match",
            "tracer._cassette_file",
        ),
    ),
    ("recorder", ("tracer.recorder", "tracer.timeline", "tracer.semconv", "tracer.sse")),
    ("routes", ("tracer.routes",)),
    ("apis", ("tracer.apis", "tracer.apis.*")),
    ("spans", ("tracer.spans", "tracer.reaper", "tracer._mlflow_logs")),
    ("export", ("tracer.export", "tracer._export_process", "tracer._sidecar")),
    (
        "foundations",
        (
            "tracer.config",
            "tracer.sampling",
            "tracer.redact",
            "tracer.multipart",
            "tracer.failsafe",
            "tracer.nesting",
            "tracer.run",
        ),
    ),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "tracer").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The tracer modules ``path`` imports anywhere in it (a function's body included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def layer_of(module: str) -> int:
    matches = [
        rank
        for rank, (_, patterns) in enumerate(LAYERS)
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns)
    ]
    assert len(matches) == 1, f"{module} is in {len(matches)} layers of LAYERS"
    return matches[0]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_every_module_is_in_one_layer() -> None:
    for module in modules():
        layer_of(module)


def test_imports_go_down_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) < layer_of(module)
    ]
    assert upward == []


def test_no_import_closes_a_circle() -> None:
    edges = graph()
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_export_process_needs_little_of_the_tracer() -> None:
    """Within the table, tighter: ``export`` reaches only these; the export process (started
    by path, the tracer package not imported) only leaves that import nothing of the tracer."""
    edges = graph()
    assert edges["tracer.export"] <= {
        "tracer._export_process",
        "tracer.config",
        "tracer.failsafe",
        "tracer.sampling",  # the count of spans sampling left out
    }
    # tracer.run: the bootstrap directory the export process is started without;
    # tracer._sidecar: the model catalog check when the application writes at exit.
    assert edges["tracer._export_process"] <= {"tracer.failsafe", "tracer.run", "tracer._sidecar"}
    for leaf in ("tracer.sampling", "tracer.run", "tracer._sidecar", "tracer.failsafe"):
        assert edges[leaf] == set(), leaf


def test_the_tracer_never_imports_the_local_server() -> None:
    # Only the pointer left where it was (tracer/devserver.py) names it.
    naming = [
        name
        for name, path in modules().items()
        if re.search(r"^\s*(from|import) llm_devserver\b", path.read_text(), re.M)
    ]
    assert naming == ["tracer.devserver"]


def test_the_map_names_every_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    for layer, patterns in LAYERS:
        assert f"| {layer} |" in page, layer
        for pattern in patterns:
            file = pattern.removeprefix("tracer").lstrip(".").replace(".", "/") or "__init__"
            file = file.replace("/*", "/")
            assert f"`{file}" in page, (layer, pattern)
