"""Faults survived, measured: ``make faults``.

    python -m faults [--kills 50] [--papermill 5] [--worker-deaths 3] [--scheduler-losses 1]
                                [--seed 0] [--json PATH]

* SIGKILL during training (:mod:`faults.kills`): ``--kills`` plain ``python -c`` trainings and
  ``--papermill`` papermill runs of 02_train, each killed at a random moment (seeded, uniform over
  the time an uninterrupted training holds its lock, measured first); every time the checkpoints
  left must form a consistent pair and the run resumed from them must end bit for bit as the
  uninterrupted one.
* A Dask worker killed mid-point (:mod:`faults.sweep`): ``--worker-deaths`` sweeps of
  two points on a scheduler and worker on 127.0.0.1, the worker process killed while the second
  point trains; the sweep must end with both points done, the first untouched, the second not
  counted done in between.
* The scheduler killed mid-sweep: ``--scheduler-losses`` sweeps of three points whose scheduler is
  killed while the third trains; a clear ConnectionError, then the same sweep on a new scheduler
  must run that point only.

Prints one line per kind of fault: tried, survived, and the details; ``--json`` keeps every outcome.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench import machine_info
from faults import kills
from faults import sweep as sweep_faults
from helpers.jobs import sweep


def sigkill_loop(work: Path, n: int, papermill: bool, rng, ref: kills.Reference, log) -> dict:
    """``n`` trainings killed at random moments and resumed; the counts and every outcome.

    The moments are uniform over the time an uninterrupted training of the same kind holds its
    lock here (measured first), so that nearly every kill lands during training.
    """
    kind = "papermill" if papermill else "python"
    window = kills.training_seconds(work / f"{kind}-window", papermill=papermill) if n else 0.0
    log(f"{kind}: an uninterrupted training holds its lock {window:.2f} s; kills fall in that window")
    outcomes = []
    for i in range(n):
        delay = float(rng.uniform(0, window))
        result = kills.kill_and_resume(
            work / f"{'papermill' if papermill else 'python'}-{i:03d}", ref, delay, papermill=papermill
        )
        outcomes.append({"delay": round(delay, 3), **result})
        if result["pair"] or result["final"]:
            log(f"  kill {i}: {result}")
    during = [o for o in outcomes if o["took_over"] is not None]  # killed while training: the lock was left
    counts = {
        "tried": n,
        "window_seconds": round(window, 2),
        "during_training": len(during),
        "after_training": n - len(during),
        "mid_write": sum(o["temp_files"] > 0 for o in during),
        "before_first_checkpoint": sum(o["step"] is None for o in during),
        "pairs_consistent": sum(not o["pair"] for o in outcomes),
        "resumed_exactly": sum(not o["final"] for o in outcomes),
        "locks_taken_over": sum(bool(o["took_over"]) for o in during),
    }
    return {"counts": counts, "outcomes": outcomes}


def worker_deaths(work: Path, n: int, log) -> dict:
    """``n`` sweeps of two points whose worker is killed while the second one trains."""
    outcomes = []
    for i in range(n):
        with sweep_faults.cluster(work / f"dask-{i}") as (address, _):
            out = work / f"worker-{i}" / "sweep"
            r = sweep_faults.sweep_with_a_death(
                out, {"eta": [0.05, 0.1]}, address, "eta-0.1", sweep_faults.kill_worker_of
            )
        after = sweep_faults.snapshot(out)
        outcomes.append(
            {
                "killed": r["killed"],
                "error": repr(r.get("error", "")),
                "completed": [row["status"] for row in r.get("rows", [])] == ["done", "done"],
                "rerun": any(after.get(k) != v for k, v in r.get("done_before", {}).items()),
                "counted_done": r.get("victim_counted_done"),
                "seconds": round(r["seconds"], 1),
            }
        )
        log(f"  worker death {i}: {outcomes[-1]}")
    counts = {
        "tried": n,
        "killed_mid_point": sum(o["killed"] for o in outcomes),
        "sweeps_completed": sum(o["completed"] for o in outcomes),
        "finished_points_rerun": sum(o["rerun"] for o in outcomes),
        "killed_point_counted_done": sum(bool(o["counted_done"]) for o in outcomes),
    }
    return {"counts": counts, "outcomes": outcomes}


def scheduler_losses(work: Path, n: int, log) -> dict:
    """``n`` sweeps whose scheduler is killed while the third point trains, then re-run on a new one."""
    grid, outcomes = {"eta": [0.05, 0.1, 0.2]}, []
    for i in range(n):
        out = work / f"scheduler-{i}" / "sweep"
        with sweep_faults.cluster(work / f"dask-s{i}-a") as (address, procs):
            sweep.run(
                {"eta": grid["eta"][:2]},
                sweep_faults.TRAIN,
                out,
                scheduler=address,
                timeout=30,
                log=lambda *_: None,
            )
            r = sweep_faults.sweep_with_a_death(
                out,
                grid,
                address,
                "eta-0.2",
                lambda pid: sweep_faults.stop(procs["scheduler"], signal.SIGKILL),
            )
        before = sweep_faults.snapshot(out)
        with sweep_faults.cluster(work / f"dask-s{i}-b") as (address, _):
            rows = sweep.run(
                grid, sweep_faults.TRAIN, out, scheduler=address, timeout=30, log=lambda *_: None
            )
        after = sweep_faults.snapshot(out)
        outcomes.append(
            {
                "killed": r["killed"],
                "error": str(r.get("error", "")),
                "clear_error": isinstance(r.get("error"), ConnectionError),
                "rerun_completed": [row["status"] for row in rows] == ["done"] * 3,
                "rerun_only_missing": all(
                    after[k] == v for k, v in before.items() if not k.startswith("eta-0.2/")
                ),
            }
        )
        log(f"  scheduler loss {i}: {outcomes[-1]}")
    counts = {
        "tried": n,
        "clear_errors": sum(o["clear_error"] for o in outcomes),
        "reruns_completed": sum(o["rerun_completed"] for o in outcomes),
        "reruns_only_missing": sum(o["rerun_only_missing"] for o in outcomes),
    }
    return {"counts": counts, "outcomes": outcomes}


def report(results: dict, out=print) -> None:
    """One line per kind of fault."""
    for name, label in (
        ("python", "SIGKILL, python -c steps.train"),
        ("papermill", "SIGKILL, papermill 02_train"),
    ):
        c = results.get(name, {}).get("counts")
        if c and c["tried"]:
            out(
                f"{label}: {c['tried']} kills tried ({c['during_training']} during training, {c['mid_write']} of them "
                f"mid-write, {c['before_first_checkpoint']} before the first checkpoint; "
                f"{c['after_training']} after it); consistent pairs {c['pairs_consistent']}/{c['tried']}, "
                f"resumed exactly {c['resumed_exactly']}/{c['tried']}, "
                f"stale locks taken over {c['locks_taken_over']}/{c['during_training']}"
            )
    c = results.get("workers", {}).get("counts")
    if c and c["tried"]:
        out(
            f"Dask worker killed mid-point: {c['killed_mid_point']}/{c['tried']} deaths, sweeps completed "
            f"{c['sweeps_completed']}/{c['tried']}, finished points re-run {c['finished_points_rerun']}, "
            f"killed point counted done {c['killed_point_counted_done']}"
        )
    c = results.get("schedulers", {}).get("counts")
    if c and c["tried"]:
        out(
            f"Dask scheduler killed mid-sweep: {c['tried']} losses, clear errors {c['clear_errors']}/{c['tried']}, "
            f"re-runs completed {c['reruns_completed']}/{c['tried']}, re-runs that ran only the missing point "
            f"{c['reruns_only_missing']}/{c['tried']}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=50, help="python -c trainings killed (default 50)")
    ap.add_argument("--papermill", type=int, default=5, help="papermill 02_train runs killed (default 5)")
    ap.add_argument(
        "--worker-deaths", type=int, default=3, help="sweeps whose Dask worker is killed (default 3)"
    )
    ap.add_argument(
        "--scheduler-losses", type=int, default=1, help="sweeps whose scheduler is killed (default 1)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default 0)")
    ap.add_argument("--json", metavar="PATH", help="write every outcome to this JSON file")
    args = ap.parse_args(argv)
    info, start = machine_info(), time.perf_counter()
    print(
        f"machine: {info['cpu']}, {info['usable_cpus']} usable CPUs, Python {info['python']}, numpy {info['numpy']}; "
        f"load average at start {info['load_average_start']}"
    )
    rng, results = (
        np.random.default_rng(args.seed),
        {"machine": info, "seed": args.seed, "settings": kills.SETTINGS},
    )
    with tempfile.TemporaryDirectory(prefix="charrnn-faults-") as tmp:
        work = Path(tmp)
        ref = kills.reference(work / "reference")
        print(
            f"uninterrupted run: {kills.SETTINGS['n_updates']:,} updates, {len(ref.states)} checkpoints, "
            f"{ref.seconds:.2f} s"
        )
        results["python"] = sigkill_loop(work, args.kills, False, rng, ref, print)
        results["papermill"] = sigkill_loop(work, args.papermill, True, rng, ref, print)
        results["workers"] = worker_deaths(work, args.worker_deaths, print)
        results["schedulers"] = scheduler_losses(work, args.scheduler_losses, print)
    print(f"faults survived (seed {args.seed}, {time.perf_counter() - start:.0f} s):")
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    survived = all(
        o["pair"] == [] and o["final"] == [] for k in ("python", "papermill") for o in results[k]["outcomes"]
    )
    survived &= all(o["completed"] and not o["rerun"] for o in results["workers"]["outcomes"])
    survived &= all(
        o["clear_error"] and o["rerun_completed"] and o["rerun_only_missing"]
        for o in results["schedulers"]["outcomes"]
    )
    return 0 if survived else 1


if __name__ == "__main__":
    sys.exit(main())
