"""Function calling inside an agent, traced at the wire.

Shows: LLM spans recorded by the transport nest under your own ``@mlflow.trace`` spans, so an
agent trace reads AGENT -> [CHAT_MODEL, TOOL, TOOL, CHAT_MODEL]; the tool calls the model asked
for are in the first LLM span's outputs, with their complete arguments.

Run: ``make demo``, or ``.venv/bin/python examples/function_calling.py`` with
``DATABRICKS_HOST``/``DATABRICKS_TOKEN`` (or ``OPENAI_BASE_URL``) set.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
from _client import make_client, use_experiment
from mlflow.entities import SpanType

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city name"}},
                "required": ["city"],
            },
        },
    }
]


@mlflow.trace(span_type=SpanType.TOOL)
def get_weather(city: str) -> str:
    """A stand-in weather service (deterministic, so the example is reproducible)."""
    return f"The weather in {city} is sunny, 22°C."


@mlflow.trace(span_type=SpanType.AGENT)
def run_agent(question: str) -> str:
    """Ask the model, run the tools it calls, and ask again for the final answer."""
    client, model = make_client()
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    response = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    message = response.choices[0].message
    if not message.tool_calls:
        return message.content or ""

    messages.append(
        {
            "role": "assistant",
            "content": message.content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
            ],
        }
    )
    for call in message.tool_calls:
        args = json.loads(call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": get_weather(**args)})

    final = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    return final.choices[0].message.content or ""


def main() -> str:
    """Run the agent on a two-city question; print and return its answer."""
    use_experiment()
    answer = run_agent("What's the weather like in Paris and London?")
    print(answer)
    return answer


if __name__ == "__main__":
    main()
