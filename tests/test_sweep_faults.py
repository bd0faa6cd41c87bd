"""A sweep on a real Dask scheduler and worker on 127.0.0.1 whose worker process is killed while a
point trains, and later whose scheduler goes away: every point ends done, finished points are
never run again, a killed point's half-written folder never counts as done, the lost scheduler is
a clear error, and a re-run has only the missing point to do. One scenario (each point is a
papermill run, the costly part), checked by the tests below; the harness is
:mod:`faults.sweep`."""

from __future__ import annotations

import json
import signal

import pytest

from faults import sweep as faults
from helpers.jobs import sweep

GRID = {"eta": [0.05, 0.1, 0.2]}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """eta-0.05 finishes; the worker is killed while eta-0.1 trains (Dask runs it again); then the
    scheduler is killed while eta-0.2 trains. (``make faults`` also re-runs the sweep on a new
    scheduler; here the re-run's to-do list is checked, and test_sweep.py runs re-runs.)"""
    tmp = tmp_path_factory.mktemp("sweep-faults")
    out = tmp / "sweep"
    with faults.cluster(tmp / "dask") as (address, procs):
        worker = faults.sweep_with_a_death(
            out, {"eta": GRID["eta"][:2]}, address, "eta-0.1", faults.kill_worker_of
        )
        after_worker = faults.snapshot(out)
        lost = faults.sweep_with_a_death(
            out, GRID, address, "eta-0.2", lambda pid: faults.stop(procs["scheduler"], signal.SIGKILL)
        )
    return {
        "out": out,
        "worker": worker,
        "after_worker": after_worker,
        "lost": lost,
        "after": faults.snapshot(out),
    }


def test_a_killed_worker_does_not_stop_the_sweep(scenario):
    worker = scenario["worker"]
    assert worker["killed"] and "error" not in worker, worker
    assert [(r["name"], r["status"]) for r in worker["rows"]] == [("eta-0.05", "done"), ("eta-0.1", "done")]
    record = json.loads((scenario["out"] / "eta-0.1" / "point.json").read_text())
    assert record["status"] == "done" and record["error"] == ""


def test_the_killed_points_folder_never_counts_as_done_and_finished_points_never_rerun(scenario):
    worker = scenario["worker"]
    assert worker["victim_counted_done"] is False  # point.json said "running" after the kill
    assert set(worker["done_before"]) == {"eta-0.05/point.json", "eta-0.05/run.json"}
    assert {k: scenario["after_worker"][k] for k in worker["done_before"]} == worker[
        "done_before"
    ]  # not run again


def test_a_lost_scheduler_is_a_clear_error_and_the_rerun_has_only_the_missing_point(scenario):
    lost = scenario["lost"]
    assert lost["killed"], lost
    err = lost["error"]
    assert isinstance(err, ConnectionError) and "lost the Dask scheduler" in str(err)
    assert "0 of the 1 points to run finished" in str(
        err
    ) and "run the same sweep: only the missing points run" in str(err)
    after = scenario["after"]
    assert {k: v for k, v in after.items() if not k.startswith("eta-0.2/")} == scenario[
        "after_worker"
    ]  # skipped
    assert json.loads(after["eta-0.2/point.json"])["status"] == "running"  # half-written: not counted done
    todo = [r["name"] for r in sweep.plan(GRID, faults.TRAIN, scenario["out"]) if not sweep.finished(r)]
    assert todo == ["eta-0.2"]
    rows = {r["name"]: r["status"] for r in sweep.collect(scenario["out"])}
    assert rows == {"eta-0.05": "done", "eta-0.1": "done", "eta-0.2": "running"}


def test_a_point_already_finished_by_this_sweep_is_not_run_again(tmp_path, monkeypatch):
    """Dask recomputes a result lost with its worker; run_point then returns the record it wrote."""
    record = {"parameters": {"eta": 0.1}, "status": "done", "error": "", "sweep_id": "abc"}
    (tmp_path / "point.json").write_text(json.dumps(record))
    monkeypatch.setattr(sweep, "run_notebook", lambda *a, **k: pytest.fail("the finished point ran again"))
    assert sweep.run_point({"eta": 0.1}, str(tmp_path), "abc") == record
    ran = []
    monkeypatch.setattr(sweep, "run_notebook", lambda *a, **k: ran.append(a))
    assert (
        sweep.run_point({"eta": 0.1}, str(tmp_path), "another sweep")["status"] == "done" and ran
    )  # redo: runs


def test_a_point_dask_gave_up_on_is_failed_with_the_reason(tmp_path):
    """After distributed.scheduler.allowed-failures worker deaths, Dask raises KilledWorker: recorded as the error."""
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    class Future:
        def result(self):
            raise KilledWorker(
                "run_point-abc", SimpleNamespace(address="tcp://127.0.0.1:1234"), allowed_failures=3
            )

    run = {"parameters": {"eta": 0.1}, "folder": str(tmp_path)}
    record = sweep.outcome(Future(), run)
    assert record["status"] == "failed" and record["error"].startswith("KilledWorker: ")
    assert "tcp://127.0.0.1:1234" in record["error"]
    assert json.loads((tmp_path / "point.json").read_text())["error"] == record["error"]
