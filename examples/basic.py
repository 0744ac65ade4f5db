"""Basic chat completion, traced at the wire.

Shows: ``OpenAI(..., http_client=TracedClient())`` records one MLflow span per call, with the
prompt, the completion, latency, model, ``temperature``/``max_tokens`` and token usage; no
``mlflow.openai.autolog()`` needed.

Run: ``make demo`` (runs every example against a local server), or with
``DATABRICKS_HOST``/``DATABRICKS_TOKEN`` (or ``OPENAI_BASE_URL``) set:
``.venv/bin/python examples/basic.py``. Traces go to the MLflow tracking store and experiment
named by ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME``.
"""

from __future__ import annotations

from typing import Any

from _client import make_client, use_experiment


def main() -> Any:
    """Ask one question; print and return the response."""
    use_experiment()
    client, model = make_client()
    response = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0.1,
        max_tokens=100,
    )
    print(response.choices[0].message.content)
    return response


if __name__ == "__main__":
    main()
