"""Parameter sweeps: notebooks/02_train.ipynb run once per point of a grid, with papermill, on Dask.

    python -m helpers.jobs.sweep --grid '{"eta": [0.05, 0.1], "m": [50, 100]}' [--base '{"n_updates": 100000}']
                            [--scheduler tcp://HOST:8786] [--n-workers N] [--out-dir output/sweep] [--redo]

Without a scheduler the points run on a local Dask cluster of single-threaded worker processes,
one per core; with one, on that scheduler's workers, which need the project's environment and
must see the data and ``out_dir`` at the same paths as this machine.

Each point trains into its own folder ``out_dir/<name>/``: the executed notebook, 02_train's
result files and ``point.json`` (parameters, status, error), written atomically when the point
ends. ``out_dir`` also holds ``sweep.json`` (the plan), ``sweep.csv`` (the results table) and
``sweep.png`` (the loss curves). A re-run skips the points that finished with the same parameters
(unless ``redo``); failed and unfinished points run again.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import os
import re
import socket
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dask
from dask.system import CPU_COUNT
from distributed import Client, LocalCluster, as_completed

from ..common import files, lock
from ..common.paths import resolve
from ..common.progress import Progress
from ..report.figures import save_figure
from ..report.sweep_section import RESULTS, canonical, collect, loss_figure, record_for, section  # noqa: F401 (section: for 08)
from .notebooks import NotebookError, notebook_parameters, run_notebook

UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


# --- the plan ----------------------------------------------------------------------------------


def parse_mapping(value, name: str) -> dict:
    """``value`` as a dict: a mapping as it is, a text as JSON (papermill's ``-p`` passes text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as err:
            raise ValueError(f'{name} must be a JSON object such as {{"eta": [0.05, 0.1]}}; {err}') from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must map parameter names to values, got {type(value).__name__} {value!r}")
    return dict(value)


def grid_points(grid: dict) -> list[dict]:
    """Every combination of the grid's values, in the grid's order (the last name varies fastest)."""
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"grid values must be non-empty lists, e.g. {{{json.dumps(name)}: [...]}}; "
                f"{name} has {values!r}"
            )
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def _plain(value) -> bool:
    """Whether a value reads back unambiguously from a folder name: a JSON scalar, or a word that is none."""
    if not isinstance(value, str):
        return value is None or isinstance(value, (bool, int, float))
    try:
        json.loads(value)  # "0.1", "true", "NaN": text that would look like a number or a constant
        return False
    except ValueError:
        return re.fullmatch(r"[a-z0-9.+]*", value) is not None  # lower case: folders differ on any filesystem


def point_name(point: dict) -> str:
    """A stable, filesystem-safe folder name for ``point``, e.g. ``eta-0.05_m-50`` (``base`` for no values).

    Names are sorted. When a value would not read back unambiguously (text with other characters
    than lower-case letters, digits, ``.`` and ``+``, or text that looks like a number) or the name is long,
    it is made safe, shortened and suffixed with a hash of the exact values, so that different
    points never share a folder.
    """
    readable = "_".join(f"{k}-{v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(point.items()))
    safe = UNSAFE.sub("-", readable)[:80]
    if safe == readable and all(_plain(v) for v in point.values()):
        return readable or "base"
    return f"{safe}_{hashlib.sha1(canonical(point).encode()).hexdigest()[:8]}"


def plan(grid: dict, base: dict, out_dir) -> list[dict]:
    """The runs of a sweep: ``{"name", "point", "parameters", "folder"}`` per grid point.

    Raises
    ------
    ValueError
        For a name 02_train does not declare, ``out_dir`` in ``grid`` or ``base`` (the sweep sets
        it), a name in both, or two points that would share a folder.
    """
    known = set(notebook_parameters("02_train")) - {"out_dir"}
    problems = {
        "grid": set(grid) - known,
        "base": set(base) - known,
        "both grid and base": set(grid) & set(base),
    }
    for where, bad in problems.items():
        if bad:
            raise ValueError(
                f"{', '.join(sorted(bad))} in {where}: give each of 02_train's parameters at most once "
                f"({', '.join(sorted(known))}); out_dir is set by the sweep"
            )
    out = resolve(out_dir)
    runs = [{"name": point_name(p), "point": p, "parameters": {**base, **p}} for p in grid_points(grid)]
    names = Counter(r["name"] for r in runs)
    if max(names.values()) > 1:
        raise ValueError(
            f"several grid points would share the folder {names.most_common(1)[0][0]!r}; list each value once"
        )
    return [{**r, "folder": str(out / r["name"])} for r in runs]


def finished(run: dict) -> bool:
    """Whether ``run`` finished before with the same parameters and its run.json is present."""
    record = record_for(run["folder"], run["parameters"])
    return bool(record) and record.get("status") == "done" and (Path(run["folder"]) / "run.json").is_file()


# --- running -----------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_point(parameters: dict, folder: str, sweep_id: str = "") -> dict:
    """Execute 02_train with ``parameters`` into ``folder`` and record it in point.json (the Dask task).

    A notebook that fails is recorded with status "failed" and its error, not raised. A point
    this sweep (``sweep_id``) has already finished is not run again (Dask recomputes a result
    that was lost with its worker); a point whose folder a training still holds (the orphaned
    kernel of a killed worker, which ends within seconds) is waited for. Returns the record.
    """
    folder = Path(folder)
    done = record_for(folder, parameters)
    if sweep_id and done and done.get("status") == "done" and done.get("sweep_id") == sweep_id:
        return done
    lock.wait_free(folder, timeout=LOCK_WAIT)
    record = {
        "parameters": parameters,
        "status": "running",
        "error": "",
        "started": _now(),
        "sweep_id": sweep_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    files.write_json(folder / "point.json", record)  # from here until "done", the folder never counts as done
    start = time.perf_counter()
    try:
        run_notebook(
            "02_train", folder / "02_train.ipynb", {**DEFAULTS, **parameters, "out_dir": str(folder)}
        )
        record["status"] = "done"
    except NotebookError as err:
        record.update(status="failed", error=err.error)
    except Exception as err:  # the kernel died, the notebook could not be written, ...
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    record.update(finished=_now(), wall_seconds=round(time.perf_counter() - start, 3))
    files.write_json(folder / "point.json", record)
    return record


DEFAULTS = {"engine": "auto"}
"""02_train parameters a point gets unless it names them: the numba engine for the GRU and the LSTM when
numba is installed (the vanilla RNN stays on numpy; see helpers.train.engine)."""
LOCK_WAIT = 30.0
"""Seconds a point waits for its folder's training lock (held by the orphaned kernel of a killed worker)."""


def outcome(future, run: dict) -> dict:
    """The record of a completed task; a task that raised (a worker killed too often, ...) is recorded as
    failed here."""
    try:
        return future.result()
    except Exception as err:
        record = {
            "parameters": run["parameters"],
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "finished": _now(),
        }
        files.write_json(Path(run["folder"]) / "point.json", record)
        return record


THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_env(n_workers: int) -> dict:
    """What a local cluster's worker processes (and so their notebooks' kernels) start with, in place
    of Dask's defaults for them (``distributed.nanny.pre-spawn-environ``).

    The cores shared out: every thread count cores // workers (at least 1), so that two trainings of
    two threads each do not fight over two cores (a count the caller set is kept). And glibc's own
    malloc: Dask sets MALLOC_TRIM_THRESHOLD_=65536, which hands memory back to the system at every
    free of a large temporary; a 2-layer GRU (m = 384, B = 32) then trained 9% slower than under
    ``make best``, and with Dask's one BLAS thread 20% slower. None unsets a variable.
    """
    threads = str(max(1, CPU_COUNT // max(1, n_workers)))
    env = {name: os.environ.get(name, threads) for name in THREAD_VARIABLES}
    return {**env, "MALLOC_TRIM_THRESHOLD_": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


@contextlib.contextmanager
def connect(scheduler: str = "", n_workers: int = 1, timeout: float = 60):
    """A Dask client, closed on exit.

    To ``scheduler`` ("tcp://host:port") when given, waiting up to ``timeout`` seconds for it and
    for a worker; else to a new local cluster of ``n_workers`` single-threaded worker processes
    on 127.0.0.1, shut down on exit, whose trainings share the cores (:func:`worker_env`).
    """
    if not scheduler:
        spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **worker_env(n_workers)}
        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}),
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except OSError as err:
        raise ConnectionError(
            f"no Dask scheduler answers at {scheduler} ({err}); start one with `dask scheduler`"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ConnectionError(
                f"the scheduler at {scheduler} has no worker after {timeout:g} s; start one with "
                f"`dask worker {scheduler}` in the project's environment"
            ) from None
        yield client
    finally:  # a lost scheduler: its reconnection attempt would end in a traceback; the error raised says it all
        logger = logging.getLogger("distributed.client")
        was, logger.disabled = logger.disabled, client.status != "running"
        try:
            client.close()
        finally:
            logger.disabled = was


def execute(client, todo: list[dict], sweep_id: str = "") -> None:
    """Submit ``todo`` and record each point as it completes.

    A point whose worker dies is run again by Dask, up to ``distributed.scheduler.allowed-failures``
    times (3 by default), then recorded as failed with Dask's KilledWorker error. A finished point's
    future is released at once, so that a worker lost later has nothing of it to compute again.
    On Ctrl-C the rest is cancelled and KeyboardInterrupt re-raised.

    Raises
    ------
    ConnectionError
        When the scheduler goes away mid-sweep; the points that finished are recorded, the others
        run when the sweep is run again.
    """
    futures = {client.submit(run_point, r["parameters"], r["folder"], sweep_id, pure=False): r for r in todo}
    bar, counts = Progress(len(todo), "points"), Counter()
    try:
        for future in as_completed(list(futures)):
            run = futures.pop(future)
            if future.cancelled() and client.status != "running":
                raise ConnectionError(
                    f"lost the Dask scheduler ({getattr(client.scheduler, 'address', '?')}) "
                    f"mid-sweep: {counts['done']} of the {len(todo)} points to run finished (they are recorded). "
                    "Start the scheduler and its workers again and run the same sweep: only the missing points run."
                )
            record = outcome(future, run)
            future.release()
            counts[record["status"]] += 1
            bar.write(
                f"{run['name']}: " + ("done" if record["status"] == "done" else f"failed, {record['error']}")
            )
            if record["status"] == "done" and not finished(run):
                bar.write(
                    f"  but {run['folder']} is not visible here: out_dir must be on a filesystem shared with "
                    "the workers"
                )
            bar.update(
                sum(counts.values()), ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            )
    except KeyboardInterrupt:
        client.cancel(list(futures))
        bar.write("interrupted: the finished points are recorded; run the sweep again to do the rest")
        raise
    finally:
        bar.close()


def run(
    grid,
    base=None,
    out_dir="output/sweep",
    scheduler: str = "",
    n_workers: int = 0,
    redo: bool = False,
    timeout: float = 60,
    log=print,
) -> list[dict]:
    """Run every point of ``grid`` that has not finished yet; write sweep.csv and sweep.png.

    Parameters
    ----------
    grid, base : dict or str
        02_train parameters mapped to lists of values / to the value all points share (or JSON).
    out_dir : str
        The sweep's folder; relative paths are read from the repository root.
    scheduler : str
        Address of a running Dask scheduler; empty: a local cluster.
    n_workers : int
        Worker processes of the local cluster; 0: one per core (never more than points to run).
    redo : bool
        Run again the points that finished before with the same parameters.
    timeout : float
        Seconds to wait for the scheduler and for its first worker.
    log : callable
        Receives the summary lines.

    Returns
    -------
    list of dict
        The rows of sweep.csv (see :func:`collect`).
    """
    grid, base = parse_mapping(grid, "grid"), parse_mapping(base or {}, "base")
    runs, out = plan(grid, base, out_dir), resolve(out_dir)
    files.write_json(
        out / "sweep.json",
        {
            "notebook": "notebooks/02_train.ipynb",
            "grid": grid,
            "base": base,
            "points": [{k: r[k] for k in ("name", "point", "parameters")} for r in runs],
        },
    )
    todo = runs if redo else [r for r in runs if not finished(r)]
    log(
        f"sweep of {len(runs)} points into {out}: {len(runs) - len(todo)} finished before, {len(todo)} to run "
        f"on {scheduler or 'a local cluster'}"
    )
    try:
        if todo:
            with connect(scheduler, min(n_workers or CPU_COUNT, len(todo)), timeout) as client:
                execute(client, todo, uuid.uuid4().hex[:12])
    finally:
        rows = collect(out)
        write_results(out, rows)
    return rows


# --- results -----------------------------------------------------------------------------------


def write_results(out_dir, rows: list[dict]) -> None:
    """Write ``rows`` to ``out_dir/sweep.csv`` (empty cells for unknown values) and the curves to sweep.png."""
    out = resolve(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, list(rows[0]) if rows else ["name", *RESULTS, "status", "error"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    files.write_text(out / "sweep.csv", buf.getvalue())
    save_figure(loss_figure(out), out / "sweep.png")


# --- command line ------------------------------------------------------------------------------


def main(argv=None) -> int:
    """``make sweep``: run the sweep, print one line per point; exit 0 when all finished, 1 when some failed,
    2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.jobs.sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--grid", required=True, help='JSON: 02_train parameters mapped to lists, e.g. {"eta": [0.05, 0.1]}'
    )
    parser.add_argument("--base", default="{}", help="JSON: 02_train parameters common to all points")
    parser.add_argument(
        "--scheduler", default="", help="address of a Dask scheduler (default: a local cluster)"
    )
    parser.add_argument(
        "--n-workers", type=int, default=0, help="workers of the local cluster (default: one per core)"
    )
    parser.add_argument(
        "--out-dir", default="output/sweep", help="the sweep's folder (default: output/sweep)"
    )
    parser.add_argument("--redo", action="store_true", help="run again the points that finished before")
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for the scheduler and a worker"
    )
    args = parser.parse_args(argv)
    try:
        rows = run(
            args.grid, args.base, args.out_dir, args.scheduler, args.n_workers, args.redo, args.timeout
        )
    except (ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted; the finished points are in {resolve(args.out_dir) / 'sweep.csv'}", file=sys.stderr
        )
        return 130
    for row in rows:
        print(
            f"{row['status']:>8}  {row['name']}  best smooth loss "
            f"{'-' if row['best_smooth_loss'] is None else format(row['best_smooth_loss'], '.3f')}"
            + (f"  {row['error']}" if row["error"] else "")
        )
    print(f"results: {resolve(args.out_dir) / 'sweep.csv'}, {resolve(args.out_dir) / 'sweep.png'}")
    return 0 if all(row["status"] == "done" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
