"""The gated cells at the shape of issue #19 (the one-layer recipe before the 2-layer one): our engines against PyTorch.

    python -m benchmarks.gated [--rounds 3] [--seconds 1.5]        (``make bench`` runs it too)

Characters trained on per wall-clock second by ``Trainer.update`` (forward, BPTT, the finiteness
check, clipping, one Adam step, bookkeeping) at m = 256, B = 32, seq_length = 50, float32, for
the GRU and the LSTM, with the numpy engine (BLAS limited to 1 or 2 threads) and the numba engine
(1 or 2 threads), and PyTorch's ``nn.GRU``/``nn.LSTM`` training at the same shapes when an
interpreter with torch is found (``benchmarks/torch_ref.py``, in a subprocess: torch is never a
dependency of the project). That interpreter is ``$TORCH_PYTHON``, else this one if it has torch;
without either the PyTorch column is left out with a note. The paths take turns within each
round, PyTorch's included (one subprocess per round), so a background load spreads over all.
Wall-clock time, because two threads are the point; so the load average is printed beside, and
how much a second core gives to numpy's own product before and after (on a virtual machine that
varies with the host's load, minute by minute). The last column is ours over PyTorch's run right
after it, round by round: the spread of the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from helpers.common.paths import ROOT
from helpers.model import fast
from helpers.train import engine
from helpers.train.config import TrainConfig
from helpers.train.trainer import Trainer, TrainState

SHAPE = dict(m=256, batch_size=32, seq_length=50, optimizer="adam", eta=0.003, dtype="float32")
"""Issue #19's shape (a one-layer GRU or LSTM as the earlier `make best` trained it)."""
CHARS = SHAPE["batch_size"] * SHAPE["seq_length"]
THREADS = (1, 2)


def torch_python() -> str | None:
    """An interpreter that has torch: $TORCH_PYTHON, else this one if it can import torch, else None."""
    if os.environ.get("TORCH_PYTHON"):
        return os.environ["TORCH_PYTHON"]
    return sys.executable if importlib.util.find_spec("torch") is not None else None


def torch_run(python: str, cell: str, threads: int, K: int, seconds: float) -> dict:
    """One run of benchmarks/torch_ref.py: its JSON (``chars_per_second`` ...), or {"error": why}."""
    cmd = [
        python,
        str(ROOT / "benchmarks" / "torch_ref.py"),
        "--cell",
        cell,
        "--threads",
        str(threads),
        "--m",
        str(SHAPE["m"]),
        "--batch",
        str(SHAPE["batch_size"]),
        "--seq-length",
        str(SHAPE["seq_length"]),
        "--K",
        str(K),
        "--eta",
        str(SHAPE["eta"]),
        "--runs",
        "1",
        "--seconds",
        str(seconds),
        "--warmup",
        "2",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + 10 * seconds)
        return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()[-300:]}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as err:
        return {"error": f"{type(err).__name__}: {err}"}


class Path:
    """Trainer updates of one cell with one engine and thread count."""

    def __init__(self, cell: str, name: str, threads: int, data, chars):
        cfg = TrainConfig(cell=cell, engine=name, sample_until=0, sample_length=1, **SHAPE)
        self.label, self.threads, self.numpy = f"{name} {threads}", threads, name == "numpy"
        self.trainer = Trainer(cfg, data, chars, TrainState.fresh(cfg, len(chars), np.random.default_rng(42)))
        if not self.numpy:
            self.trainer.engine = engine.NumbaEngine(cfg, len(chars), np.float32, threads=threads)

    def rate(self, seconds: float) -> tuple[float, float]:
        """Characters per wall-clock second and per second of this thread's CPU time, over about ``seconds``
        (the thread's, not the process's: OpenBLAS's idle threads spin for a while after a two-thread
        path, and that time is not this path's)."""
        with threadpool_limits(self.threads if self.numpy else 1, "blas"):
            n, t0, c0 = 0, time.perf_counter(), time.thread_time()
            while time.perf_counter() - t0 < seconds or n < 2:
                self.trainer.update()
                n += 1
            return n * CHARS / (time.perf_counter() - t0), n * CHARS / (time.thread_time() - c0)


def bench(data, chars, seconds: float, rounds: int, out=print) -> dict:
    """The table of characters per second (median over ``rounds``); returns every figure."""
    python, K = torch_python(), len(chars)
    names = ("numpy", "numba") if fast.AVAILABLE else ("numpy",)
    out("")
    out(
        f"Gated cells at issue #19's shape (m={SHAPE['m']}, B={SHAPE['batch_size']}, seq_length="
        f"{SHAPE['seq_length']}, K={K}, float32, Adam, clipping): characters trained on per wall-clock second, "
        f"median of {rounds} interleaved rounds of ~{seconds:g} s"
    )
    if not fast.AVAILABLE:
        out(f"(numba column skipped: {fast.REASON})")
    if python is None:
        out(
            "(PyTorch column skipped: no torch here; set TORCH_PYTHON to an interpreter that has it, e.g. a "
            "separate venv with `pip install torch`)"
        )
    t = time.perf_counter()
    paths = {
        cell: [Path(cell, name, th, data, chars) for name in names for th in THREADS]
        for cell in ("gru", "lstm")
    }
    for ps in paths.values():
        for p in ps:
            p.trainer.update()  # compiles or loads the kernels, allocates
    out(f"(set up and warmed up in {time.perf_counter() - t:.1f} s; load average {load_average()})")
    before = cores(out)
    rates = {cell: {p.label: [] for p in ps} for cell, ps in paths.items()}
    cpu = {cell: {p.label: [] for p in ps} for cell, ps in paths.items()}
    torch = {cell: {th: [] for th in THREADS} for cell in paths}
    for _ in range(rounds):
        for cell, ps in paths.items():
            for p in ps:
                wall, per_cpu = p.rate(seconds)
                rates[cell][p.label].append(wall)
                cpu[cell][p.label].append(per_cpu)
            for th in THREADS if python else ():
                torch[cell][th].append(torch_run(python, cell, th, K, seconds))
    res = _table(rates, torch, python, out)
    res["cpu"] = _cpu_table(cpu, torch, out)
    res["sgemm_gflops_before"], res["sgemm_gflops_after"] = before, cores(out)
    return res


def cores(out=print, n: int = 1024) -> dict:
    """numpy's float32 (n, n) x (n, n) product in GFLOP/s on 1 and on 2 BLAS threads, printed: how much
    the second core gives right now. On a virtual machine it varies with the host's load, and every
    two-thread row with it (the gated cells' per-step products most: they meet 100 times an update)."""
    a, rates = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), {}
    for th in THREADS:
        with threadpool_limits(th, "blas"):
            a @ a
            reps, t = 10, time.perf_counter()
            for _ in range(reps):
                a @ a
            rates[th] = round(reps * 2 * n**3 / (time.perf_counter() - t) / 1e9, 1)
    out(
        f"(numpy float32 {n}^3 product: {rates[1]:.0f} GFLOP/s on 1 thread, {rates[2]:.0f} on 2, "
        f"{rates[2] / rates[1]:.2f}x; load average {load_average()})"
    )
    return rates


def _table(rates, torch, python, out) -> dict:
    out(
        f"{'cell':<6}{'threads':>8}{'numpy':>11}{'numba':>11}{'PyTorch':>11}{'numba/PyTorch':>15}{'per round':>15}"
    )
    rows = {}
    for cell, by_label in rates.items():
        for th in THREADS:
            med = {
                name: statistics.median(v)
                for name in ("numpy", "numba")
                if (v := by_label.get(f"{name} {th}"))
            }
            good = [r["chars_per_second"] for r in torch[cell][th] if "chars_per_second" in r]
            errors = [r["error"] for r in torch[cell][th] if "error" in r]
            pt = statistics.median(good) if good else None
            ratio = med["numba"] / pt if pt and "numba" in med else None
            paired = [  # ours against PyTorch's run right after it, round by round
                a / r["chars_per_second"]
                for a, r in zip(by_label.get(f"numba {th}", []), torch[cell][th])
                if "chars_per_second" in r
            ]
            rows[f"{cell} {th}"] = {
                **med,
                "pytorch": pt,
                "numba_over_pytorch": ratio,
                "runs": by_label,
                "pytorch_runs": good,
                "pytorch_errors": errors,
                "numba_over_pytorch_per_round": paired,
            }
            cols = [f"{med[n]:>11,.0f}" if n in med else f"{'-':>11}" for n in ("numpy", "numba")]
            out(
                f"{cell:<6}{th:>8}{''.join(cols)}{f'{pt:,.0f}' if pt else '-':>11}"
                f"{f'{ratio:.2f}x' if ratio else '-':>15}"
                f"{f'{min(paired):.2f}-{max(paired):.2f}x' if paired else '-':>15}"
            )
            if errors and not good:
                out(f"  (PyTorch failed: {errors[0]})")
    versions = next((r for c in torch.values() for v in c.values() for r in v if "torch" in r), {})
    if python:
        out(
            f"PyTorch: {versions.get('torch', '?')} via {python} (one-hot input, nn.{{GRU,LSTM}} + Linear + "
            f"cross-entropy + clip_grad_value_ + Adam); load average now {load_average()}"
        )
    return {
        "rows": rows,
        "torch_python": python,
        "torch_version": versions.get("torch"),
        "load_average_end": load_average(),
    }


def _cpu_table(cpu, torch, out) -> dict:
    """One thread per CPU second: on a busy machine, what each path does with the CPU it gets."""
    out(
        "One thread, characters per second of CPU time (the training thread's; PyTorch's process's): less "
        "sensitive to other processes"
    )
    rows = {}
    for cell, by_label in cpu.items():
        med = {n: statistics.median(v) for n in ("numpy", "numba") if (v := by_label.get(f"{n} 1"))}
        pt = [r["chars_per_cpu_second"] for r in torch[cell][1] if "chars_per_cpu_second" in r]
        pt_med = statistics.median(pt) if pt else None
        ratio = med["numba"] / pt_med if pt_med and "numba" in med else None
        rows[cell] = {**med, "pytorch": pt_med, "numba_over_pytorch": ratio}
        out(
            f"{cell:<6}{1:>8}"
            f"{''.join(f'{med[n]:>11,.0f}' if n in med else f'{chr(45):>11}' for n in ('numpy', 'numba'))}"
            f"{f'{pt_med:,.0f}' if pt_med else '-':>11}{f'{ratio:.2f}x' if ratio else '-':>15}"
        )
    return rows


def load_average() -> list | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def main(argv=None) -> int:
    from benchmarks.bench import header, load_text
    from helpers.data import text as data_mod

    ap = argparse.ArgumentParser(prog="python -m benchmarks.gated", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    info = header()
    text, source = load_text()
    chars = data_mod.build_vocab(text)
    print(f"text: {source}")
    res = bench(data_mod.encode(text, chars), chars, args.seconds, args.rounds)
    res["machine"] = info
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
