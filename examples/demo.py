"""Run every example, then show the traces they recorded: what ``make demo`` runs.

Without ``DATABRICKS_HOST``/``DATABRICKS_TOKEN`` the examples call a local OpenAI-compatible
server (:class:`llm_devserver.DevServer`), so the demo needs no network and no account; the
Gemini, Ollama and Cohere example always calls that server, which speaks their protocols too.
Traces go to ``MLFLOW_TRACKING_URI`` if set, else to ``.demo/mlflow.db`` in the project root,
in the experiment ``tracer-demo``.

Run from the project root: ``make demo`` (or ``.venv/bin/python examples/demo.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
ROOT = EXAMPLES.parent
sys.path.insert(0, str(EXAMPLES))

import mlflow  # noqa: E402
from llm_devserver import DevServer  # noqa: E402

from tracer.show import render_traces  # noqa: E402


def main() -> None:
    """Start the local server if needed, run the examples, print their traces."""
    db = ROOT / ".demo" / "mlflow.db"
    if "MLFLOW_TRACKING_URI" not in os.environ:
        db.parent.mkdir(exist_ok=True)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    # MLflow prices LLM spans from a model catalog it downloads; the bundled copy is enough here,
    # and offline the download retries for several seconds before falling back to it.
    os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    with contextlib.ExitStack() as stack:
        # Gemini, Ollama and Cohere always go to the local server (it speaks their protocols).
        server = stack.enter_context(DevServer())
        os.environ.setdefault("GEMINI_BASE_URL", server.url)
        os.environ.setdefault("OLLAMA_HOST", server.url)
        os.environ.setdefault("CO_API_URL", server.url)
        if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
            print(f"Calling Databricks at {os.environ['DATABRICKS_HOST']}")
        else:
            os.environ["OPENAI_BASE_URL"] = server.base_url
            print(f"Calling the local server at {server.base_url}")
        mlflow.set_experiment("tracer-demo")

        import async_chat
        import basic
        import function_calling
        import one_line
        import other_providers
        import streaming

        started_ms = int(time.time() * 1000)
        for title, module in [
            ("Basic chat completion", basic),
            ("Streaming", streaming),
            ("Function calling (agent + tools)", function_calling),
            ("Async (two concurrent calls)", async_chat),
            ("Gemini, Ollama and Cohere (the local server)", other_providers),
            ("One line: tracer.instrument(), each SDK's own client", one_line),
        ]:
            print(f"\n=== {title}: examples/{module.__name__}.py ===")
            module.main()

        mlflow.flush_trace_async_logging()

    traces = mlflow.search_traces(
        filter_string=f"trace.timestamp_ms >= {started_ms}",
        order_by=["timestamp_ms ASC"],
        return_type="list",
    )
    print(f"\n=== {len(traces)} traces recorded ===\n")
    print(render_traces(traces))

    uri = os.environ["MLFLOW_TRACKING_URI"]
    print("\nOpen them in the MLflow UI:")
    if uri.startswith("sqlite:"):
        print(f"  .venv/bin/mlflow ui --backend-store-uri {uri}")
    else:
        print(f"  (tracking server: {uri})")


if __name__ == "__main__":
    main()
