"""``make compat``: the slow end-to-end tests, then the integration suite against each
supported SDK version.

The end-to-end tests (marked ``e2e``: a real ``mlflow server``, a wheel in a fresh virtual
environment, whole programs in child processes) run first, in the project's own environment.
Each SDK version then gets its own environment: a directory layered over the project's virtual
environment (``pip install --no-deps --target``, put first on ``PYTHONPATH``), so only the SDK
differs and pip's cache makes a rerun quick. The runs use pytest-xdist workers. Prints a
Markdown table of what ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPENAI_SUITE = [
    "tests/apis/test_openai_chat.py",
    "tests/recorder/test_openai_lifecycle.py",
    "tests/apis/test_openai_apis.py",
    "tests/package/test_examples.py",
    "tests/apis/test_images.py",
    "tests/apis/test_stream_merge.py",
    "tests/privacy/test_secrets.py",
    "tests/apis/test_openai_audio.py",
    "tests/cassettes/test_cassettes.py",
]
ANTHROPIC_SUITE = ["tests/apis/test_anthropic.py"]
COHERE_GROQ_SUITE = ["tests/apis/test_cohere_groq.py"]
GEMINI_SUITE = ["tests/apis/test_gemini.py"]
OLLAMA_SUITE = ["tests/apis/test_ollama.py"]
#: The name of the run of the ``e2e`` tests, in the project's environment (no layer).
END_TO_END = "end to end"
#: pytest-xdist workers of every run: one per core. More do not end the e2e tests sooner (their
#: child processes need the CPU too: 4 workers took 11 min 32 s, 2 took 10 min 27 s) and make
#: their bounds on exit times tighter.
WORKERS = "2"
# name -> (requirements installed in the layer, test files, pytest -k filter)
ENVIRONMENTS: dict[str, tuple[list[str], list[str], str | None]] = {
    END_TO_END: ([], ["tests"], None),
    # openai<3 accepts only httpx clients, so the httpx2 variants are deselected there.
    "openai 1.109.x": (["openai==1.109.*", "distro>=1.7,<2", "tqdm>4"], OPENAI_SUITE, "not httpx2"),
    "openai 2.x": (["openai>=2,<3", "distro>=1.7,<2", "tqdm>4"], OPENAI_SUITE, "not httpx2"),
    "openai 3.x": (["openai>=3,<4"], OPENAI_SUITE, None),
    "anthropic 2.x": (["anthropic>=2,<3", "docstring-parser"], ANTHROPIC_SUITE, None),
    # google-genai 1.x defaults to the v1beta API (2.x and 3.x to v1) and takes only httpx
    # clients in its HttpOptions.
    "google-genai 1.x": (["google-genai>=1.30,<2"], GEMINI_SUITE, "not httpx2"),
    "google-genai 2.x": (["google-genai>=2,<3"], GEMINI_SUITE, None),
    "google-genai 3.x": (["google-genai>=3,<4"], GEMINI_SUITE, None),
    "ollama 0.5.x": (["ollama>=0.5,<0.6"], OLLAMA_SUITE, None),
    "ollama 0.6.x": (["ollama>=0.6,<0.7"], OLLAMA_SUITE, None),
    "cohere 5.x, groq 0.x": (["cohere>=5,<6", "groq>=0.30,<1"], COHERE_GROQ_SUITE, None),
    # LiteLLM (about 260 MB with its dependencies) is not in the dev extra: its recipe is
    # proven here, in a layer of its own.
    "litellm": (
        ["litellm>=1.70,<2", "+deps"],
        ["tests/reach/test_frameworks.py", "tests/reach/test_instrument_litellm.py"],
        "litellm",
    ),
}


def _layer(name: str, requirements: list[str]) -> Path:
    target = ROOT / ".compat" / name.replace(" ", "-")
    stamp = target / ".requirements"
    if not stamp.exists() or stamp.read_text() != "\n".join(requirements):
        # Only the SDK differs, unless its own dependencies are named ("+deps": a framework
        # whose dependencies the project's environment does not have).
        deps = "+deps" in requirements
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                *([] if deps else ["--no-deps"]),
                "--upgrade",
                "--target",
                str(target),
                *[r for r in requirements if r != "+deps"],
            ],
            check=True,
        )
        stamp.write_text("\n".join(requirements))
    return target


def _version(layer: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    env = {**os.environ, "PYTHONPATH": str(layer)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def main(names: list[str]) -> int:
    """Run every environment, or those named on the command line."""
    rows = []
    failed = False
    for name, (requirements, suite, selection) in ENVIRONMENTS.items():
        if names and name not in names:
            continue
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite]
        if name == END_TO_END:
            package, version, env = "llm-wire-tracer", "(this checkout)", dict(os.environ)
            command += ["-n", WORKERS, "-m", "e2e"]
        else:
            layer = _layer(name, requirements)
            package = requirements[0].split("=")[0].split(">")[0].split("<")[0]
            version = _version(layer, package)
            env = {**os.environ, "PYTHONPATH": str(layer)}
            # The e2e tests ran once, above; the layers rerun the integration suites only.
            command += ["-n", WORKERS, "-m", "not e2e"]
        print(f"\n=== {name}: {package} {version} ===", flush=True)
        if selection:
            command += ["-k", selection]
        result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        print(result.stdout[-2000:], result.stderr[-2000:], sep="", flush=True)
        summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"
        failed |= result.returncode != 0
        rows.append(f"| {name} | {package} {version} | {', '.join(suite)} | {summary} |")
    print("\n| environment | installed | suites | result |\n|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
