"""Run in a subprocess by test_export_priority.py: an application making traced calls.

Usage: priority_probe.py CALLS exit|report
``exit`` just ends (the tracer writes the traces at exit); ``report`` flushes and prints one
JSON line: whether every trace was written, and the export process's scheduling policy and
nice value as the kernel has them.
"""

from __future__ import annotations

import json
import os
import sys

from llm_devserver import DevServer
from openai import OpenAI

from tracer import TracedClient, export
from tracer._export_process import _priority_reversible


def main() -> None:
    calls, mode = int(sys.argv[1]), sys.argv[2]
    question = [{"role": "user", "content": "What is the capital of France?"}]
    with DevServer() as server:
        client = OpenAI(base_url=server.base_url, api_key="k", http_client=TracedClient())
        for _ in range(calls):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=question)
            assert reply.choices[0].message.content == "The capital of France is Paris."
    if mode == "report":
        flushed = export.flush()
        pid = export.export_process().stats()["pid"]
        threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        report = {
            "flushed": flushed,
            "reversible": _priority_reversible(),
            "policies": sorted({os.sched_getscheduler(tid) for tid in threads}),
            "nices": sorted({os.getpriority(os.PRIO_PROCESS, tid) for tid in threads}),
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
