"""``make bench``: the tracer measured against bare calls and ``mlflow.openai.autolog()``.

:mod:`bench.run` is the entry point (``python bench/run.py``); :mod:`bench.workloads` is what
each mode's process runs; :mod:`bench.passthrough` measures non-LLM requests under
``tracer.instrument()`` against :mod:`bench.loopback`; :mod:`bench.report` turns the figures
into the tables and the targets.
See docs/performance.md.
"""
