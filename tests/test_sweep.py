"""Parameter sweeps on Dask: a local cluster, a real scheduler and worker on 127.0.0.1, a failing
point, re-runs that skip finished points, sweep.csv, the figure and the report section."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.common.paths import ROOT
from helpers.jobs import sweep
from helpers.report import sections as report

TRAIN = {
    "data_path": "pydoc_data",
    "n_updates": 200,
    "seq_length": 10,
    "log_every": 10,
    "sample_every": 100,
    "sample_until": 200,
    "sample_length": 20,
    "checkpoint_every": 100,
}
BIN = Path(sys.executable).parent


def no_log(*_):
    """A log function that shows nothing."""


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def points_of(out) -> dict[str, dict]:
    """Each point's point.json, by folder name."""
    return {p.parent.name: json.loads(p.read_text()) for p in Path(out).glob("*/point.json")}


def snapshot(out) -> dict[str, tuple[int, bytes]]:
    """Modification time and bytes of every point.json and run.json, to see what a re-run touched."""
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in Path(out).glob("*/*.json")
        if p.name in ("point.json", "run.json")
    }


# --- the plan, without a cluster -------------------------------------------------------------


def test_grid_points_are_every_combination_in_grid_order():
    points = sweep.grid_points({"eta": [0.05, 0.1], "m": [8, 16, 32]})
    assert len(points) == 6 and points[0] == {"eta": 0.05, "m": 8} and points[1] == {"eta": 0.05, "m": 16}
    assert {(p["eta"], p["m"]) for p in points} == {(e, m) for e in (0.05, 0.1) for m in (8, 16, 32)}
    assert sweep.grid_points({}) == [{}]


def test_grid_and_base_are_read_from_dicts_or_json_text(tmp_path):
    as_text = sweep.plan(
        sweep.parse_mapping('{"m": [8, 16]}', "grid"), sweep.parse_mapping('{"eta": 0.2}', "base"), tmp_path
    )
    as_dict = sweep.plan({"m": [8, 16]}, {"eta": 0.2}, tmp_path)
    assert as_text == as_dict
    assert [r["parameters"] for r in as_dict] == [{"eta": 0.2, "m": 8}, {"eta": 0.2, "m": 16}]
    assert [r["folder"] for r in as_dict] == [str(tmp_path / "m-8"), str(tmp_path / "m-16")]
    assert sweep.parse_mapping("", "base") == {}


@pytest.mark.parametrize(
    "grid, base, message",
    [
        ({"eta": 0.1}, {}, "non-empty lists"),
        ({"eta": []}, {}, "non-empty lists"),
        ({"etaa": [0.1]}, {}, "etaa in grid"),
        ({"m": [8]}, {"n_update": 5}, "n_update in base"),
        ({"out_dir": ["a", "b"]}, {}, "out_dir in grid"),
        ({"m": [8]}, {"m": 16}, "m in both grid and base"),
        ({"m": [8, 8]}, {}, "share the folder 'm-8'"),
        ('{"m": [8,', {}, "JSON object"),
        ("[1, 2]", {}, "must map parameter names"),
    ],
)
def test_bad_grids_are_refused_before_anything_runs(tmp_path, grid, base, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sweep.run(grid, base, tmp_path / "out", log=no_log)
    assert not (tmp_path / "out").exists()


NAMES = st.sampled_from(["eta", "m", "seq_length", "sig", "data_path", "dtype"])
VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["0.1", "8", "true", "x_m-1", "a/b", "a-b", "float32"]),
)


@given(st.dictionaries(NAMES, VALUES, max_size=4), st.dictionaries(NAMES, VALUES, max_size=4))
def test_point_names_are_safe_stable_and_distinct(a, b):
    name = sweep.point_name(a)
    assert re.fullmatch(r"[A-Za-z0-9._+-]{1,89}", name) and name not in (".", "..")
    assert sweep.point_name(dict(reversed(list(a.items())))) == name  # key order does not matter
    if sweep.canonical(a) != sweep.canonical(b):  # different even where case does not count (macOS, Windows)
        assert sweep.point_name(b).lower() != name.lower()


@pytest.mark.parametrize(
    "a, b",
    [
        ({"eta": "0.1"}, {"eta": 0.1}),
        ({"m": "x_eta-1"}, {"m": "x", "eta": 1}),
        ({"data_path": "a/b"}, {"data_path": "a-b"}),
        ({"m": 1}, {"m": True}),
        ({"dtype": "Float32"}, {"dtype": "float32"}),
    ],
)
def test_look_alike_points_get_different_folders(a, b):
    assert sweep.point_name(a).lower() != sweep.point_name(b).lower()
    assert sweep.point_name({"eta": 0.05, "m": 50}) == "eta-0.05_m-50"  # plain values stay readable


def test_local_workers_share_the_cores_out_with_glibcs_malloc(monkeypatch):
    """Two workers on two cores train with one thread each, in the environment their processes start
    with (which their notebooks' kernels inherit), without Dask's MALLOC_TRIM_THRESHOLD_; the
    caller's own settings win."""
    import dask
    from distributed.nanny import _get_env_variables

    seen = {}

    class Recorder:
        def __init__(self, **kw):
            seen.update(kw, spawn=_get_env_variables("distributed.nanny.pre-spawn-environ"))
            raise RuntimeError("recorded")

    for name in (*sweep.THREAD_VARIABLES, "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sweep, "CPU_COUNT", 2)
    monkeypatch.setattr(sweep, "LocalCluster", Recorder)
    with pytest.raises(RuntimeError, match="recorded"), sweep.connect("", 2):
        pass
    assert {seen["spawn"][k] for k in sweep.THREAD_VARIABLES} == {"1"} and seen["n_workers"] == 2
    assert "MALLOC_TRIM_THRESHOLD_" not in seen["spawn"]
    assert "MALLOC_TRIM_THRESHOLD_" in _get_env_variables("distributed.nanny.pre-spawn-environ")  # restored
    assert dask.config.get("distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS") == 1
    assert sweep.worker_env(1)["NUMBA_NUM_THREADS"] == "2"
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    assert sweep.worker_env(2)["NUMBA_NUM_THREADS"] == "3"


def test_unreachable_scheduler_is_reported(tmp_path):
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match="no Dask scheduler answers"):
        sweep.run({"m": [8]}, TRAIN, tmp_path, scheduler=f"tcp://127.0.0.1:{port}", timeout=2, log=no_log)


# --- a local cluster, from the notebook ------------------------------------------------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """notebooks/08_sweep.ipynb with a JSON-text grid (as papermill -p passes it) on a local cluster of 2 processes."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    papermill.execute_notebook(
        ROOT / "notebooks" / "08_sweep.ipynb",
        out.parent / "08_sweep.ipynb",
        parameters={
            "grid": '{"eta": [0.05, 0.1]}',
            "base": json.dumps({**TRAIN, "m": 8}),
            "n_workers": 2,
            "out_dir": str(out),
        },
        cwd=str(ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    return out


def test_local_sweep_trains_every_point_into_its_folder(local_sweep):
    records = points_of(local_sweep)
    assert set(records) == {"eta-0.05", "eta-0.1"}
    for name, eta in (("eta-0.05", 0.05), ("eta-0.1", 0.1)):
        assert records[name]["status"] == "done" and records[name]["parameters"] == {
            **TRAIN,
            "m": 8,
            "eta": eta,
        }
        run = json.loads((local_sweep / name / "run.json").read_text())
        assert (
            run["config"]["eta"] == eta
            and run["config"]["m"] == 8
            and run["steps_done"] == TRAIN["n_updates"]
        )
        executed = nbformat.read(local_sweep / name / "02_train.ipynb", as_version=4)
        assert any(
            f"out_dir = {json.dumps(str(local_sweep / name))}" in c.source.replace("'", '"')
            for c in executed.cells
        )
    assert read_csv(local_sweep / "sweep.csv")[0]["name"] == "eta-0.05"
    assert (local_sweep / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_notebook_shows_the_table_and_figure(local_sweep):
    nb = nbformat.read(local_sweep.parent / "08_sweep.ipynb", as_version=4)
    shown = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert '<table class="results">' in shown and "data:image/png;base64," in shown
    for name in ("eta-0.05", "eta-0.1"):
        best = json.loads((local_sweep / name / "run.json").read_text())["best_smooth_loss"]
        assert f"{best:.3f}" in shown


def test_rerun_runs_only_new_points(local_sweep, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(local_sweep, out)
    before = snapshot(out)
    rows = sweep.run({"eta": [0.05, 0.1, 0.2]}, {**TRAIN, "m": 8}, out, n_workers=2, log=no_log)
    assert [r["name"] for r in rows] == ["eta-0.05", "eta-0.1", "eta-0.2"]
    assert all(r["status"] == "done" for r in rows)
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before  # finished points untouched
    assert {"eta-0.2/point.json", "eta-0.2/run.json"} == set(after) - set(before)


def test_rerun_with_nothing_to_do_starts_no_cluster(local_sweep, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    shutil.copytree(local_sweep, out)
    monkeypatch.setattr(sweep, "connect", lambda *a, **k: pytest.fail("a cluster was started"))
    rows = sweep.run({"eta": [0.05, 0.1]}, {**TRAIN, "m": 8}, out, log=no_log)
    assert [r["status"] for r in rows] == ["done", "done"]


def test_changed_parameters_make_points_pending(local_sweep, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(local_sweep, out)
    runs = sweep.plan({"eta": [0.05, 0.1]}, {**TRAIN, "m": 8, "n_updates": 300}, out)
    assert not any(sweep.finished(r) for r in runs)
    assert all(sweep.finished(r) for r in sweep.plan({"eta": [0.05, 0.1]}, {**TRAIN, "m": 8}, out))
    record = json.loads((out / "eta-0.1" / "point.json").read_text())
    (out / "eta-0.1" / "point.json").write_text(json.dumps({**record, "status": "running"}))  # killed mid-run
    (out / "eta-0.05" / "metrics.json").write_text(
        json.dumps({"best_val_loss_per_char": 1.625, "run_id": "x"})
    )
    rows = {r["name"]: r for r in sweep.collect(out)}
    assert rows["eta-0.1"]["status"] == "running" and rows["eta-0.1"]["best_smooth_loss"] is None
    assert rows["eta-0.05"]["best_val_loss_per_char"] == 1.625 and rows["eta-0.05"]["status"] == "done"


# --- a real scheduler and worker -------------------------------------------------------------


def _start(cmd, log, cwd) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """End the process group we started (the worker's nanny has a child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a `dask scheduler` with one `dask worker` (2 threads), both on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("dask")
    procs = []
    try:
        procs.append(
            _start(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(tmp / "scheduler.json"),
                ],
                tmp / "scheduler.log",
                tmp,
            )
        )
        deadline = time.monotonic() + 30
        while not (tmp / "scheduler.json").is_file():
            assert procs[0].poll() is None and time.monotonic() < deadline, (
                tmp / "scheduler.log"
            ).read_text()
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one go, but give it a moment
        address = json.loads((tmp / "scheduler.json").read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(
            _start(
                [
                    str(BIN / "dask"),
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "2",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp),
                ],
                tmp / "worker.log",
                tmp,
            )
        )
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def remote_sweep(scheduler, tmp_path_factory):
    """A grid with one failing point (m = 0) on the scheduler's worker."""
    out = tmp_path_factory.mktemp("remote") / "sweep"
    rows = sweep.run({"m": [8, 0, 12]}, TRAIN, out, scheduler=scheduler, timeout=30, log=no_log)
    return out, rows


def test_failing_point_is_recorded_and_the_others_finish(remote_sweep):
    out, rows = remote_sweep
    assert [r["name"] for r in rows] == ["m-8", "m-0", "m-12"]
    status = {r["name"]: r["status"] for r in rows}
    assert status == {"m-8": "done", "m-0": "failed", "m-12": "done"}
    failed = points_of(out)["m-0"]
    assert failed["error"].startswith("ValueError") and "m must be > 0" in failed["error"]
    assert (out / "m-0" / "02_train.ipynb").is_file() and not (out / "m-0" / "run.json").exists()


def test_sweep_csv_holds_each_points_results(remote_sweep):
    out, _ = remote_sweep
    table = read_csv(out / "sweep.csv")
    assert list(table[0]) == [
        "name",
        "m",
        "final_smooth_loss",
        "best_smooth_loss",
        "best_val_loss_per_char",
        "updates_per_second",
        "seconds",
        "status",
        "error",
    ]
    for row in table:
        folder = out / row["name"]
        assert int(row["m"]) == json.loads((folder / "point.json").read_text())["parameters"]["m"]
        if row["status"] == "done":
            run = json.loads((folder / "run.json").read_text())
            for key in ("final_smooth_loss", "best_smooth_loss", "updates_per_second", "seconds"):
                assert float(row[key]) == pytest.approx(run[key])
            assert float(row["best_smooth_loss"]) <= float(row["final_smooth_loss"])
            assert row["best_val_loss_per_char"] == "" and row["error"] == ""
        else:
            assert row["final_smooth_loss"] == row["seconds"] == "" and "m must be > 0" in row["error"]


def test_loss_figure_has_a_labelled_curve_per_finished_point(remote_sweep):
    out, _ = remote_sweep
    ax = sweep.loss_figure(out).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["m 8", "m 12"]
    for line, name in zip(ax.get_lines(), ("m-8", "m-12")):
        log = (out / name / "train_log.csv").read_text().splitlines()[1:]
        assert list(line.get_ydata()) == pytest.approx([float(r.split(",")[2]) for r in log])


def test_report_section_shows_table_failure_and_figure(remote_sweep):
    out, _ = remote_sweep
    body = sweep.section(str(out)).data
    assert "<h2>" not in body and '<table class="results">' in body and 'class="caption"' in body
    text = html.unescape(body)
    runs = {name: json.loads((out / name / "run.json").read_text()) for name in ("m-8", "m-12")}
    for run in runs.values():
        assert f"{run['final_smooth_loss']:.3f}" in text and f"{run['best_smooth_loss']:.3f}" in text
    lowest = min(runs, key=lambda name: runs[name]["best_smooth_loss"])
    assert (
        f"lowest smooth loss of the best model, {runs[lowest]['best_smooth_loss']:.3f}, came with m {lowest[2:]}."
        in text
    )
    assert "failed" in text and "ValueError: m must be > 0, got 0" in text
    png = re.search(r'<img class="figure"[^>]*src="data:image/png;base64,([^"]+)"', body).group(1)
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    full = report.optional_section("sweep", str(out)).data
    assert full.startswith("<h2>Parameter sweep</h2>") and body in full
    assert report.optional_section("sweep", "") is None


def test_cli_rerun_skips_finished_points_and_retries_the_failed_one(
    remote_sweep, scheduler, tmp_path, capsys
):
    out = tmp_path / "sweep"
    shutil.copytree(remote_sweep[0], out)
    before = snapshot(out)
    code = sweep.main(
        [
            "--grid",
            '{"m": [8, 0, 12]}',
            "--base",
            json.dumps(TRAIN),
            "--scheduler",
            scheduler,
            "--out-dir",
            str(out),
            "--timeout",
            "30",
        ]
    )
    assert code == 1  # a point failed
    printed = capsys.readouterr().out
    assert re.search(r"failed\s+m-0\s.*m must be > 0", printed) and re.search(r"done\s+m-12\s", printed)
    after = snapshot(out)
    assert {k: after[k] for k in before if not k.startswith("m-0/")} == {
        k: v for k, v in before.items() if not k.startswith("m-0/")
    }
    assert after["m-0/point.json"] != before["m-0/point.json"]  # retried


def test_redo_runs_every_point_again(remote_sweep, scheduler, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(remote_sweep[0], out)
    before = {n: json.loads((out / n / "run.json").read_text())["run_id"] for n in ("m-8", "m-12")}
    rows = sweep.run({"m": [8, 12]}, TRAIN, out, scheduler=scheduler, redo=True, timeout=30, log=no_log)
    assert [r["status"] for r in rows] == ["done", "done"]
    after = {n: json.loads((out / n / "run.json").read_text())["run_id"] for n in ("m-8", "m-12")}
    assert all(after[n] != before[n] for n in before)


def test_cli_refuses_a_bad_grid(capsys):
    assert sweep.main(["--grid", '{"m": 8}']) == 2
    assert "non-empty lists" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_sweep_passes_the_grid_to_the_cli():
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    }  # under make test
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "sweep", 'GRID={"m": [8, 16]}', "SWEEP_OUT=/tmp/x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert (
        "-m helpers.jobs.sweep" in line
        and """--grid '{"m": [8, 16]}'""" in line
        and "--out-dir /tmp/x" in line
    )
