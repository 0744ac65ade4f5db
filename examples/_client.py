"""Builds the OpenAI client the examples share: traced, pointed at Databricks or a local server.

With ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN`` set, the client calls the Databricks
Foundation Model APIs; otherwise it calls ``OPENAI_BASE_URL`` (``make demo`` starts a local
OpenAI-compatible server and sets it). ``EXAMPLE_MODEL`` overrides the model name.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
from openai import AsyncOpenAI, OpenAI

from tracer import TracedAsyncClient, TracedClient

DEFAULT_MODEL = "databricks-llama-4-maverick"


def use_experiment() -> None:
    """Point MLflow at the experiment named by ``MLFLOW_EXPERIMENT_NAME``, as the seed's
    examples do with ``mlflow.set_experiment(...)`` (needed with the lightweight
    ``mlflow-tracing`` package, which does not read the variable for ``@mlflow.trace`` spans)."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        mlflow.set_experiment(name)


def make_client(async_: bool = False) -> tuple[Any, str]:
    """Return ``(client, model)``: an ``OpenAI`` (or ``AsyncOpenAI``) client whose calls are
    traced to MLflow, and the model name to use with it."""
    model = os.environ.get("EXAMPLE_MODEL", DEFAULT_MODEL)
    host, token = os.environ.get("DATABRICKS_HOST"), os.environ.get("DATABRICKS_TOKEN")
    if host and token:
        api_key, base_url = token, f"{host.rstrip('/')}/serving-endpoints"
    else:
        base_url = os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise RuntimeError(
                "Set DATABRICKS_HOST and DATABRICKS_TOKEN, or OPENAI_BASE_URL "
                "(or run `make demo`, which starts a local server)."
            )
        api_key = os.environ.get("OPENAI_API_KEY", "local")
    if async_:
        aclient = AsyncOpenAI(api_key=api_key, base_url=base_url, http_client=TracedAsyncClient())
        return aclient, model
    return OpenAI(api_key=api_key, base_url=base_url, http_client=TracedClient()), model
