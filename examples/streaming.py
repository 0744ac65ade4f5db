"""Streaming chat completion, traced at the wire.

Shows: with ``stream=True`` the chunks reach the caller as they arrive, untouched, while the
span records the reassembled (non-streaming) completion, time to first chunk, chunk count and
whether the stream completed.

Run: ``make demo``, or ``.venv/bin/python examples/streaming.py`` with ``DATABRICKS_HOST``/
``DATABRICKS_TOKEN`` (or ``OPENAI_BASE_URL``) set.
"""

from __future__ import annotations

from _client import make_client, use_experiment


def main() -> str:
    """Stream the answer to one question, printing deltas as they come; return the full text."""
    use_experiment()
    client, model = make_client()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0.1,
        max_tokens=100,
        stream=True,
    )
    parts: list[str] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    return "".join(parts)


if __name__ == "__main__":
    main()
