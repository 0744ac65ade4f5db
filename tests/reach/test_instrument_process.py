"""The one line across processes: ``llm-tracer run -- COMMAND`` (no code change; Python
children inherit it), ``instrument()`` and forks, and libraries that are not installed. Each
program runs in a real child process writing to the suite's MLflow store; its spans are read
back here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from llm_devserver import DevServer
from readback import read_spans

pytestmark = pytest.mark.e2e  # make compat runs it (pyproject.toml: markers)

LLM_TRACER = str(Path(sys.executable).with_name("llm-tracer"))
TIMEOUT = 180

CHAT = """
import os, sys
import openai
client = openai.OpenAI(api_key="sk-test", base_url=os.environ["BASE_URL"], max_retries=0)
reply = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": sys.argv[1]}]
)
print(reply.choices[0].message.content)
"""


def environment(server: DevServer, tracking_store: str, experiment: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TRACER_"))}
    env.update(
        BASE_URL=server.base_url,
        MLFLOW_TRACKING_URI=tracking_store,
        MLFLOW_EXPERIMENT_ID=experiment,
        TRACER_STRICT="1",
        **extra,
    )
    return env


def run(args: list[str], env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def llm_spans(experiment: str) -> list:
    return [s for s in read_spans(experiment) if s.span_type == "CHAT_MODEL"]


def test_run_traces_the_program_and_its_python_children(
    server: DevServer, tracking_store: str, experiment: str, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        CHAT
        + textwrap.dedent(
            """
            import subprocess
            if sys.argv[1] == "parent":
                subprocess.run([sys.executable, __file__, "child"], check=True)
            """
        )
    )
    env = environment(server, tracking_store, experiment)
    done = run([LLM_TRACER, "run", "--", sys.executable, str(app), "parent"], env)
    assert done.returncode == 0, done.stderr
    answers = done.stdout.splitlines()
    spans = llm_spans(experiment)
    assert sorted(s.inputs["messages"][0]["content"] for s in spans) == ["child", "parent"]
    assert sorted(s.outputs["choices"][0]["message"]["content"] for s in spans) == sorted(answers)
    assert len({s.trace_id for s in spans}) == 2


def test_run_reads_tracer_variables_and_keeps_an_existing_sitecustomize(
    server: DevServer, tracking_store: str, experiment: str, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(CHAT)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITE_RAN'] = 'yes'\n")
    (tmp_path / "check.py").write_text("import os\nprint(os.environ.get('SITE_RAN'))\n")
    env = environment(
        server, tracking_store, experiment, TRACER_CAPTURE_CONTENT="false", PYTHONPATH=str(site)
    )
    done = run([LLM_TRACER, "run", sys.executable, "app.py", "secret question"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    (span,) = llm_spans(experiment)
    assert "secret question" not in str(span.inputs)
    checked = run([LLM_TRACER, "run", "--", sys.executable, "check.py"], env, tmp_path)
    assert checked.stdout.strip() == "yes", checked.stderr


def run_under_llm_tracer(code: str, server: DevServer, tracking_store: str, experiment: str) -> str:
    """What ``llm-tracer run -- python -c CODE`` prints (it must succeed)."""
    env = environment(server, tracking_store, experiment)
    done = run([LLM_TRACER, "run", "--", sys.executable, "-c", code], env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_run_costs_a_program_without_llm_calls_no_import(
    server: DevServer, tracking_store: str, experiment: str
) -> None:
    probe = (
        "import sys, tracer; "
        "print(tracer.instrumented(), "
        "[m for m in ('mlflow', 'httpx', 'httpx2', 'aiohttp', 'openai', 'pydantic') "
        "if m in sys.modules])"
    )
    assert run_under_llm_tracer(probe, server, tracking_store, experiment) == "True []"


def test_run_imports_in_any_order(server: DevServer, tracking_store: str, experiment: str) -> None:
    """Patching aiohttp imports httpx, which the import hook patches in turn (this hung once)."""
    probe = (
        "import aiohttp, httpx, httpx2, httpx as again; "
        "print(httpx.Client._transport_for_url.__module__, "
        "aiohttp.ClientSession._request.__module__)"
    )
    answer = run_under_llm_tracer(probe, server, tracking_store, experiment)
    assert answer.split() == ["tracer.instrumentation", "tracer._aiohttp"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run"], 2, "a command to run is required"),
        (["run", "--"], 2, "a command to run is required"),
        (["run", "--", "no-such-command-xyz"], 127, "cannot run no-such-command-xyz"),
    ],
)
def test_run_usage_errors(args: list[str], code: int, message: str) -> None:
    done = run([LLM_TRACER, *args], dict(os.environ))
    assert done.returncode == code
    assert message in done.stderr


def test_run_help() -> None:
    done = run([LLM_TRACER, "run", "--help"], dict(os.environ))
    assert done.returncode == 0
    assert "run [--] COMMAND" in done.stdout
    listed = run([LLM_TRACER, "--help"], dict(os.environ))
    assert "run" in listed.stdout


FORKS = """
import multiprocessing, os, sys
import tracer
{before}
import openai

def call(question, instrument_here):
    if instrument_here:
        tracer.instrument()
        tracer.instrument()
    client = openai.OpenAI(api_key="k", base_url=os.environ["BASE_URL"], max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": question}}]
    )

if __name__ == "__main__":
    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=call, args=("in the child", {instrument_in_child}))
    child.start()
    child.join(120)
    assert child.exitcode == 0, child.exitcode
    call("in the parent", False)
"""


@pytest.mark.parametrize("where", ["parent", "child"])
def test_instrument_and_fork(
    server: DevServer, tracking_store: str, experiment: str, tmp_path: Path, where: str
) -> None:
    """Instrumented before the fork: the child is traced too. Instrumented in the forked
    child only: the child is traced, the parent is not."""
    script = tmp_path / "forks.py"
    script.write_text(
        FORKS.format(
            before="tracer.instrument()" if where == "parent" else "",
            instrument_in_child=where == "child",
        )
    )
    done = run([sys.executable, str(script)], environment(server, tracking_store, experiment))
    assert done.returncode == 0, done.stderr
    questions = sorted(s.inputs["messages"][0]["content"] for s in llm_spans(experiment))
    expected = ["in the child", "in the parent"] if where == "parent" else ["in the child"]
    assert questions == expected


MISSING = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("httpx2", "aiohttp"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Missing())
import os, httpx, tracer
tracer.instrument()
assert tracer.instrumented()
reply = httpx.post(
    os.environ["BASE_URL"] + "/chat/completions",
    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
)
print(reply.json()["choices"][0]["message"]["content"])
for name in ("httpx2", "aiohttp"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        pass
    else:
        raise AssertionError(name)
"""


def test_httpx2_and_aiohttp_not_installed(
    server: DevServer, tracking_store: str, experiment: str, tmp_path: Path
) -> None:
    script = tmp_path / "missing.py"
    script.write_text(MISSING)
    done = run([sys.executable, str(script)], environment(server, tracking_store, experiment))
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    (span,) = llm_spans(experiment)
    assert span.outputs["choices"][0]["message"]["content"] == done.stdout.strip()


EVALUATE = """
import os
import mlflow, openai
from mlflow.entities import Trace
from mlflow.genai.scorers import scorer

client = openai.OpenAI(api_key="k", base_url=os.environ["BASE_URL"], max_retries=0)

@scorer
def answered(outputs) -> bool:
    return bool(outputs)

def predict(question: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content

result = mlflow.genai.evaluate(
    data=[{"inputs": {"question": q}} for q in ("one", "two")],
    predict_fn=predict,
    scorers=[answered],
)
for trace in result.result_df["trace"]:
    print(sorted(span.name for span in Trace.from_json(trace).data.spans))
"""


def test_run_and_genai_evaluate_record_each_call_once(
    server: DevServer, tracking_store: str, experiment: str, tmp_path: Path
) -> None:
    """MLflow is imported after the tracer (at start-up): its autologs of the SDKs are still
    settled before evaluate() could switch OpenAI's on, so each row's trace is the tracer's
    span alone, as with a TracedClient."""
    script = tmp_path / "evaluate.py"
    script.write_text(EVALUATE)
    env = environment(server, tracking_store, experiment)
    done = run([LLM_TRACER, "run", "--", sys.executable, str(script)], env)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert rows == ["['chat gpt-4o-mini']"] * 2, done.stdout


def test_the_export_process_is_not_instrumented() -> None:
    from tracer.run import BOOTSTRAP_DIR, environment, without_bootstrap

    env = environment({"PYTHONPATH": "/a"})
    assert env["PYTHONPATH"].split(os.pathsep) == [BOOTSTRAP_DIR, "/a"]
    assert without_bootstrap(env)["PYTHONPATH"] == "/a"
    assert "PYTHONPATH" not in without_bootstrap(environment({}))


POOL_WORK = """
import os
import openai

def work(i):
    client = openai.OpenAI(api_key="k", base_url=os.environ["BASE_URL"], max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"worker {i}"}]
    )
    return reply.choices[0].message.content
"""

POOL = """
import multiprocessing, sys
import tracer
from poolwork import work

if __name__ == "__main__":
    tracer.instrument()  # the parent makes no traced call before the pool starts
    pool = multiprocessing.get_context(sys.argv[1]).Pool(2, initializer=tracer.instrument)
    print(len(pool.map(work, range(6))))
    pool.close()
    pool.join()  # the workers end the way multiprocessing ends them
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_workers_write_their_traces(
    server: DevServer, tracking_store: str, experiment: str, tmp_path: Path, method: str
) -> None:
    """Workers end with ``os._exit`` (fork, forkserver) after multiprocessing's finalizers
    only: the export process a worker starts for itself registers one of those."""
    (tmp_path / "poolwork.py").write_text(POOL_WORK)
    (tmp_path / "pool.py").write_text(POOL)
    env = environment(server, tracking_store, experiment, PYTHONPATH=str(tmp_path))
    done = run([sys.executable, str(tmp_path / "pool.py"), method], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6"
    questions = sorted(s.inputs["messages"][0]["content"] for s in llm_spans(experiment))
    assert questions == [f"worker {i}" for i in range(6)]
