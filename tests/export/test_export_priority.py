"""The export process's priority, as the kernel has it: idle CPU time where the tracer can
raise it again, normal priority throughout where it cannot (a user other than root, root in a
container without ``CAP_SYS_NICE``), and an application that ends at once on a saturated host,
its traces written."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # make compat runs it (pyproject.toml: markers)

PROBE = Path(__file__).with_name("priority_probe.py")
CALLS = 5
_PR_CAPBSET_DROP = 24
_CAP_SYS_NICE = 23


def _cannot_raise_priorities() -> None:
    """In the child before it starts: no ``CAP_SYS_NICE`` and an ``RLIMIT_NICE`` of 0, as
    for an ordinary user (root drops the capability from its bounding set, which ``exec``
    then applies; for anyone else both are already so)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_CAPBSET_DROP, _CAP_SYS_NICE, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_NICE, (0, resource.getrlimit(resource.RLIMIT_NICE)[1]))


def clean_env(store: Path) -> dict[str, str]:
    """The environment of a fresh application writing to ``store`` (not the suite's
    experiment)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_EXPERIMENT_ID"}
    return {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "TRACER_STRICT": "1"}


def run_probe(
    store: Path, mode: str, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), str(CALLS), mode],
        env=clean_env(store),
        capture_output=True,
        text=True,
        # Generous: a probe that ends normally takes seconds even on a saturated host; the
        # export process held its standard error for minutes before.
        timeout=240,
        preexec_fn=_cannot_raise_priorities if unprivileged else None,
    )


def stored_traces(store: Path) -> int:
    code = (
        "import mlflow; "
        "print(len(mlflow.search_traces(locations=['0'], max_results=500, return_type='list')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(store),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def saturated_host() -> Iterator[None]:
    """Every core busy with work at normal priority until the test ends."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


@pytest.mark.parametrize("unprivileged", [False, True], ids=["may-raise", "cannot-raise"])
def test_an_application_on_a_saturated_host_ends_at_once_its_traces_written(
    tmp_path: Path, saturated_host: None, unprivileged: bool
) -> None:
    """The export process runs on idle CPU time, which a saturated host does not have; at
    exit the application waits for its traces, and the export process then ends at once, not
    when the host is quiet again (it holds the application's standard error until it ends)."""
    store = tmp_path / "mlflow.db"
    result = run_probe(store, "exit", unprivileged)
    assert result.returncode == 0, result.stderr[-3000:]
    # Written while the application waited, not after it had given up on them.
    assert "not written" not in result.stderr, result.stderr[-3000:]
    assert "not caught up" not in result.stderr, result.stderr[-3000:]
    assert stored_traces(store) == CALLS


def test_where_the_priority_can_be_raised_again_export_runs_on_idle_cpu_time(
    tmp_path: Path,
) -> None:
    result = run_probe(tmp_path / "mlflow.db", "report")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if not report["reversible"]:
        pytest.skip("only where the priority can be raised again (CAP_SYS_NICE: root)")
    assert report["flushed"] is True
    # Nothing left to write: back to idle CPU time.
    assert report["policies"] == [os.SCHED_IDLE] and report["nices"] == [19], report


def test_where_it_cannot_be_raised_again_export_runs_at_normal_priority(
    tmp_path: Path,
) -> None:
    """``SCHED_IDLE`` or nice 19 could not be left again: a saturated host would never let
    the export process run, and the traces would wait for ever (at nice 10, the application
    would wait at exit for the whole of its time-out)."""
    store = tmp_path / "mlflow.db"
    result = run_probe(store, "report", unprivileged=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["reversible"] is False
    assert report["flushed"] is True
    assert report["policies"] == [os.SCHED_OTHER] and report["nices"] == [0], report
    assert stored_traces(store) == CALLS
