"""How fast is one training update, and synthesis, on this machine?

    python -m benchmarks.bench [--runs 5] [--seconds 1.5] [--gradcheck] [--json PATH]

One update = forward + BPTT over seq_length = 25 characters, clipping to [-5, 5] and one AdaGrad
step, for m = 100 and the vocabulary of the text (K = 80 for the book), on consecutive chunks
of real text with hprev carried over, as in training. Measured, each in its own state:

  oracle        helpers.model.oracles.loss_and_grads (per time step, one-hot inputs) + np.clip and
                AdaGrad per parameter array: the min-char-rnn style baseline
  numpy f64     helpers.train.trainer.Trainer.update with engine="numpy": helpers.model.rnn on the flat buffers,
                the finiteness check, optim.clip_ + optim.adagrad_, smooth loss, log, best model;
                the project's default path
  numpy f32     the same in float32
  numba f64     Trainer.update with engine="numba": helpers.model.fast's compiled kernels
  numba f32     the same in float32

Times are this thread's CPU time (time.thread_time), so other processes on a busy machine
distort the figures far less than wall-clock time would; wall-clock rates are shown beside them.
Every path runs under threadpoolctl.threadpool_limits(1, "blas") (also the oracle, which that
only helps): these matrices are too small for BLAS threads to pay off. The methods take turns
within each run, so a background load spreads over all of them; the ratios are to the oracle
measured in the same process. Synthesis of 1000 characters, characters per second of training
with B = 1, 4, 16, 64 streams for both cells, the vanilla RNN's one-stream path against its
batched path at B = 1, the gated cells at the shape of issue #19 (m = 256, B = 32,
seq_length = 50, Adam, float32) with the numpy and the numba engine at 1 and 2 threads, beside
PyTorch's training at the same shapes when an interpreter with torch is found
(:mod:`benchmarks.gated`; ``TORCH_PYTHON=/path/to/python``), the path users run
(``02_train`` under papermill, wall clock, start-up subtracted with a short run; ``--no-papermill``
skips it) and (with --gradcheck) the m = 100 gradient check are timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks import gated
from helpers.common.paths import ROOT
from helpers.data import text as data_mod
from helpers.jobs.notebooks import run_notebook
from helpers.model import cells, fast, gradcheck, oracles, rnn, sample
from helpers.model.params import NAMES, ParamSet, init_params
from helpers.train.config import TrainConfig
from helpers.train.trainer import Trainer, TrainState, initial_state

M, SEQ_LENGTH, ETA, SIG, SEED = 100, 25, 0.1, 0.01, 42
N_SYNTH = 1000


# ---------------------------------------------------------------------------------------------
# machine and data
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = [
        {
            **{
                k: i.get(k)
                for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")
            },
            "package": Path(i.get("filepath", "?")).parent.name,
        }  # numpy.libs or scipy.libs: each bundles one
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    info = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": getattr(fast.numba, "__version__", None) if fast.AVAILABLE else None,
        "blas": blas,
        "fast_path": _fast_path_note(),
        "load_average_start": gated.load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return info


def header(out=print) -> dict:
    """Print the machine, the versions, the date and the load average; return :func:`machine_info`."""
    info = machine_info()
    out(f"CPU: {info['cpu']} ({info['logical_cpus']} logical CPUs, {info['usable_cpus']} usable)")
    out(f"Python {info['python']}, numpy {info['numpy']}, numba {info['numba'] or 'not installed'}")
    for b in info["blas"]:
        out(
            f"BLAS: {b['internal_api']} {b['version']} (in {b['package']}, {b['architecture']}, "
            f"{b['num_threads']} threads by default)"
        )
    out(f"fast path: {info['fast_path']}")
    out(f"date: {info['date']}; load average at start: {info['load_average_start']}")
    return info


def _fast_path_note() -> str:
    if not fast.AVAILABLE:
        return fast.REASON
    import scipy

    from helpers.model import fast_gated

    gated_blas = (
        "numpy's OpenBLAS" if fast_gated.blas().any() else f"np.dot, scipy {scipy.__version__}'s BLAS"
    )
    return (
        f"numba kernels; the vanilla RNN's products by np.dot through scipy {scipy.__version__}'s BLAS "
        f"(helpers.model.fast_kernels), the GRU's and LSTM's through {gated_blas} (helpers.model.fast_blas)"
    )


def load_text() -> tuple[str, str]:
    """The book if a copy is at data/ or ../shared/data/, else the standard-library corpus."""
    for path in (ROOT / "data" / "goblet_book.txt", ROOT.parent / "shared" / "data" / "goblet_book.txt"):
        if path.is_file():
            return data_mod.read_text_file(path), str(path)
    return data_mod.stdlib_text(), "pydoc_data (standard library; the book was not found)"


# ---------------------------------------------------------------------------------------------
# the update paths; each keeps its own state and walks the text like the trainer
# ---------------------------------------------------------------------------------------------


class Chunks:
    """Consecutive (x, y) chunks of the encoded text; at the end, back to 0 with hprev = 0."""

    def __init__(self, data: np.ndarray, T: int):
        self.data, self.T, self.e = data, T, 0

    def next(self):
        """(x, y, new_epoch)."""
        new_epoch = self.e + self.T + 1 > len(self.data)
        if new_epoch:
            self.e = 0
        x, y = self.data[self.e : self.e + self.T], self.data[self.e + 1 : self.e + self.T + 1]
        self.e += self.T
        return x, y, new_epoch


class OracleStep:
    """min-char-rnn style: per-step forward/BPTT, then per parameter np.clip and AdaGrad."""

    label = "oracle (oracles, per step)"

    def __init__(self, p0: ParamSet, data):
        self.params = {n: p0[n].copy() for n in NAMES}
        self.mem = {n: np.zeros_like(a) for n, a in self.params.items()}
        self.h = np.zeros(p0.m)
        self.chunks = Chunks(data, SEQ_LENGTH)

    def update(self) -> float:
        x, y, new_epoch = self.chunks.next()
        if new_epoch:
            self.h = np.zeros_like(self.h)
        p = self.params
        loss, grads, self.h = oracles.loss_and_grads(p["U"], p["W"], p["V"], p["b"], p["c"], x, y, self.h)
        for n in NAMES:
            g = grads[n]
            np.clip(g, -5, 5, out=g)
            self.mem[n] += g * g
            p[n] += -ETA * g / np.sqrt(self.mem[n] + 1e-8)
        return loss


class TrainerStep:
    """The trainer's own update (helpers.train.trainer.Trainer.update: the chunk, forward, BPTT, finiteness
    check, clipping, AdaGrad, smooth loss, log and best model) with one engine and dtype."""

    def __init__(self, p0: ParamSet, data, engine: str, dtype, cell: str = "rnn", batch_size: int = 1):
        self.label = f"{engine} {np.dtype(dtype).name}"
        cfg = TrainConfig(
            m=p0.m,
            eta=ETA,
            seq_length=SEQ_LENGTH,
            engine=engine,
            dtype=np.dtype(dtype).name,
            cell=cell,
            batch_size=batch_size,
            sample_until=0,
            sample_length=1,
        )  # one sample
        if cell == "rnn":
            params = p0.astype(dtype)
            state = TrainState(
                params=params,
                mem=params.zeros_like(),
                hprev=initial_state(cfg, params.flat.dtype),
                rng=np.random.default_rng(SEED),
                best_params=params.copy(),
            )
        else:
            state = TrainState.fresh(cfg, p0.K, np.random.default_rng(SEED))
        self.trainer = Trainer(cfg, data, [chr(32 + k) for k in range(p0.K)], state)

    def update(self) -> float:
        return self.trainer.update()


def time_updates(step, seconds: float) -> tuple[float, float]:
    """(updates per CPU second, updates per wall-clock second) over about ``seconds`` of CPU time.

    CPU time is this thread's (time.thread_time): with BLAS limited to one thread all the work
    runs here, and time spent waiting while other processes use the CPU does not count.
    """
    n, wall0, cpu0 = 0, time.perf_counter(), time.thread_time()
    while True:
        for _ in range(10):
            step.update()
        n += 10
        cpu = time.thread_time() - cpu0
        if cpu >= seconds:
            return n / cpu, n / (time.perf_counter() - wall0)


def time_call(fn, seconds: float, min_calls: int = 3) -> float:
    """Median CPU seconds (this thread's) per call of fn() over about ``seconds`` of CPU time."""
    times, start = [], time.thread_time()
    while len(times) < min_calls or time.thread_time() - start < seconds:
        t = time.thread_time()
        fn()
        times.append(time.thread_time() - t)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------


def bench_updates(p0: ParamSet, data, runs: int, seconds: float, out) -> tuple[dict, dict]:
    steps = [
        OracleStep(p0, data),
        TrainerStep(p0, data, "numpy", np.float64),
        TrainerStep(p0, data, "numpy", np.float32),
    ]
    if fast.AVAILABLE:
        steps += [TrainerStep(p0, data, "numba", np.float64), TrainerStep(p0, data, "numba", np.float32)]
    else:
        out(f"(numba rows skipped: {fast.REASON})")
    for s in steps:  # warm up: caches, first-call costs
        for _ in range(20):
            s.update()
    rates = {s.label: [] for s in steps}
    wall = {s.label: [] for s in steps}
    for r in range(runs):
        order = steps if r % 2 == 0 else steps[::-1]  # alternate the order between runs
        for s in order:
            cpu_rate, wall_rate = time_updates(s, seconds)
            rates[s.label].append(cpu_rate)
            wall[s.label].append(wall_rate)
    oracle = statistics.median(rates[steps[0].label])
    out("")
    out(
        f"One update (m={p0.m}, K={p0.K}, seq_length={SEQ_LENGTH}): {runs} runs of ~{seconds:g} CPU-s each, "
        "BLAS limited to 1 thread"
    )
    out(
        "updates/s = updates per second of this thread's CPU time (median over runs); "
        "the last column is wall-clock"
    )
    out(
        f"{'path':<30} {'updates/s':>10} {'min - max':>17} {'x oracle':>9} {'us/update':>10} {'wall upd/s':>11}"
    )
    rows = {}
    for s in steps:
        v = rates[s.label]
        med = statistics.median(v)
        wmed = statistics.median(wall[s.label])
        rows[s.label] = {
            "updates_per_cpu_s": v,
            "median": med,
            "min": min(v),
            "max": max(v),
            "ratio_to_oracle": med / oracle,
            "us_per_update": 1e6 / med,
            "updates_per_wall_s": wall[s.label],
            "wall_median": wmed,
            "wall_ratio_to_oracle": wmed / statistics.median(wall[steps[0].label]),
        }
        out(
            f"{s.label:<30} {med:>10,.0f} {min(v):>8,.0f} - {max(v):<7,.0f} {med / oracle:>8.1f}x "
            f"{1e6 / med:>10.1f} {wmed:>11,.0f}"
        )
    return rows, {s.label: s for s in steps}


def check_agreement(p0: ParamSet, data, out) -> dict:
    """How closely the numba path reproduces the numpy path on one real chunk (float64)."""
    if not fast.AVAILABLE:
        return {}
    x, y = data[:SEQ_LENGTH], data[1 : SEQ_LENGTH + 1]
    h = np.tanh(np.random.default_rng(0).standard_normal(p0.m))
    g_np, g_fast = p0.zeros_like(), p0.zeros_like()
    l_np, h_np = rnn.loss_and_grads(p0, x, y, h, g_np)
    l_fast, h_fast = fast.loss_and_grads(p0, x, y, h, g_fast)
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    res = {
        "loss": abs(l_fast - l_np) / l_np,
        "grads": rel(g_fast.flat, g_np.flat),
        "hlast": rel(h_fast, h_np),
    }
    out(
        f"numba vs numpy float64 on one chunk (relative): loss {res['loss']:.1e}, gradients {res['grads']:.1e}, "
        f"h_T {res['hlast']:.1e}"
    )
    return res


def bench_synthesis(p: ParamSet, x0: int, runs: int, seconds: float, out) -> dict:
    h0 = np.zeros(p.m)
    arrs = [p[n] for n in NAMES]
    methods = [
        (
            "np.random.choice per step (oracles.sample)",
            lambda rng: oracles.sample(*arrs, h0, x0, N_SYNTH, rng),
        ),
        (
            "inverse CDF, numpy (sample.sample_indices)",
            lambda rng: sample.sample_indices(p, h0, x0, N_SYNTH, rng),
        ),
    ]
    if fast.AVAILABLE:
        methods.append(
            (
                "inverse CDF, numba (fast.sample_indices)",
                lambda rng: fast.sample_indices(p, h0, x0, N_SYNTH, rng),
            )
        )
    for _, fn in methods:
        fn(np.random.default_rng(0))
    per = max(seconds / 3, 0.2)
    times = {name: [] for name, _ in methods}
    for r in range(runs):
        for name, fn in methods:
            rng = np.random.default_rng(r)
            times[name].append(time_call(lambda fn=fn, rng=rng: fn(rng), per))
    base = statistics.median(times[methods[0][0]])
    out("")
    out(f"Synthesis of {N_SYNTH} characters (the trained numpy float64 model), {runs} runs, CPU time")
    out(f"{'method':<46} {'ms':>8} {'min - max':>15} {'x choice':>9}")
    res = {}
    for name, _ in methods:
        v = [t * 1e3 for t in times[name]]
        med = statistics.median(v)
        res[name] = {"ms": v, "median_ms": med, "ratio_to_choice": base * 1e3 / med}
        out(f"{name:<46} {med:>8.2f} {min(v):>6.2f} - {max(v):<6.2f} {base * 1e3 / med:>8.1f}x")
    if fast.AVAILABLE:
        a, _ = sample.sample_indices(p, h0, x0, N_SYNTH, np.random.default_rng(7))
        b, _ = fast.sample_indices(p, h0, x0, N_SYNTH, np.random.default_rng(7))
        same = bool(np.array_equal(a, b))
        res["numba_equals_numpy_same_seed"] = same
        out(
            f"numba and numpy samplers give the same {N_SYNTH} indices from one seed: {'yes' if same else 'NO'}"
        )
    return res


def bench_batches(p0: ParamSet, data, seconds: float, out, sizes=(1, 4, 16, 64)) -> dict:
    """Characters per second of training as the number of streams B grows, for every cell (numpy)."""
    out("")
    out(
        f"Mini-batches (numpy float64, m={p0.m}, seq_length={SEQ_LENGTH}): characters trained on per CPU second"
    )
    out(f"{'cell':<6}" + "".join(f"{f'B={B}':>12}" for B in sizes))
    rows = {}
    for cell in ("rnn", "lstm", "gru"):
        rows[cell] = {}
        for B in sizes:
            step = TrainerStep(p0, data, "numpy", np.float64, cell=cell, batch_size=B)
            for _ in range(3):
                step.update()
            rate, _ = time_updates(step, seconds)
            rows[cell][B] = rate * B * SEQ_LENGTH
        out(f"{cell:<6}" + "".join(f"{rows[cell][B]:>12,.0f}" for B in sizes))
    return rows


def bench_one_stream(p0: ParamSet, data, seconds: float, out) -> dict:
    """Forward + BPTT at B = 1 for the vanilla RNN: the one-stream path (a Workspace) against the batched path."""
    cell, T = cells.get("rnn"), SEQ_LENGTH
    X, Y = data[None, :T], data[None, 1 : T + 1]
    state, grads = cell.initial_state(p0.m, 1), p0.zeros_like()
    rows = {}
    for label, ws in (("one-stream path", cell.workspace(p0.m, p0.K, T)), ("batched path", None)):

        def step(ws=ws):
            _, cache = cell.forward(p0, X, Y, state, ws)
            cell.backward(p0, cache, grads)

        rows[label] = 1.0 / time_call(step, seconds)
    out("")
    out(
        f"The vanilla RNN at B=1 (forward + BPTT, float64, m={p0.m}): one-stream path "
        f"{rows['one-stream path']:,.0f}/s, batched path {rows['batched path']:,.0f}/s "
        f"({rows['one-stream path'] / rows['batched path']:.2f}x: why both are kept)"
    )
    return rows


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the papermill kernel) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_papermill(source: str, trainer_cpu: float, out, short: int = 1_000, long: int = 11_000) -> dict:
    """Updates per second of ``02_train`` under papermill (what ``make report`` runs), start-up (kernel,
    imports, data) subtracted by running ``short`` and ``long`` updates. The kernel's CPU time (every
    thread: the loop, progress display, logging, messaging) is compared with ``Trainer.update`` alone."""
    data_path = "pydoc_data" if source.startswith("pydoc") else source
    walls, cpus = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (short, long):
            params = {
                "data_path": data_path,
                "out_dir": f"{tmp}/{n}",
                "n_updates": n,
                "seed": SEED,
                "sample_every": 10_000,
                "checkpoint_every": 10_000,
            }
            t, c = time.perf_counter(), _children_cpu()
            run_notebook("02_train", Path(tmp) / f"{n}.ipynb", params)
            walls[n], cpus[n] = time.perf_counter() - t, _children_cpu() - c
    rate_wall = (long - short) / (walls[long] - walls[short])
    rate_cpu = (long - short) / (cpus[long] - cpus[short])
    out("")
    out(
        f"02_train under papermill (numpy float64): {rate_cpu:,.0f} updates per kernel CPU second "
        f"({rate_wall:,.0f}/s wall clock); start-up about {walls[short] - short / rate_wall:.1f} s wall. "
        f"Trainer.update alone: {trainer_cpu:,.0f}/CPU s, so the loop around it costs "
        f"{100 * (1 - rate_cpu / trainer_cpu):.1f}%"
    )
    return {
        "updates_per_cpu_second": rate_cpu,
        "updates_per_wall_second": rate_wall,
        "walls": walls,
        "kernel_cpu_seconds": cpus,
        "trainer_update_cpu": trainer_cpu,
    }


def bench_gradcheck(K: int, data, out) -> dict:
    out("")
    out(f"Gradient check at m={M} (helpers.model.gradcheck.check, float64, centered differences)")
    out(f"{'seq_length':>10} {'seconds':>9} {'max rel. error (norm)':>22}")
    p = init_params(M, K, SIG, np.random.default_rng(SEED))
    res = {}
    for T in (10, 25, 40):
        x, y = data[:T], data[1 : T + 1]
        t = time.perf_counter()
        errs = gradcheck.check(p, x, y)
        dt = time.perf_counter() - t
        worst = max(e["norm"] for e in errs.values())
        res[T] = {"seconds": dt, "max_norm_rel_error": worst}
        out(f"{T:>10} {dt:>9.2f} {worst:>22.2e}")
    return res


def summarize(updates: dict, synthesis: dict) -> dict:
    """The speed-ups against the targets: numpy f64 >= 4x, the fastest opt-in path >= 10x, synthesis >= 5x."""
    ratio = {label: row["ratio_to_oracle"] for label, row in updates.items()}
    synth_ratio = {name: row["ratio_to_choice"] for name, row in synthesis.items() if isinstance(row, dict)}
    best_synth = max(synth_ratio.items(), key=lambda kv: kv[1])
    targets = {"numpy float64 >= 4x oracle": ratio["numpy float64"] >= 4}
    lines = [
        f"numpy float64 vs oracle: {ratio['numpy float64']:.1f}x (target 4x) "
        f"{'met' if ratio['numpy float64'] >= 4 else 'NOT met'}"
    ]
    fast_label, fast_ratio = max(
        ((k, v) for k, v in ratio.items() if not k.startswith("oracle") and k != "numpy float64"),
        key=lambda kv: kv[1],
    )
    targets["opt-in fast path >= 10x oracle"] = fast_ratio >= 10
    lines.append(
        f"fastest opt-in path vs oracle: {fast_ratio:.1f}x, {fast_label} (target 10x) "
        f"{'met' if fast_ratio >= 10 else 'NOT met'}"
    )
    targets["synthesis >= 5x np.random.choice"] = best_synth[1] >= 5
    lines.append(
        f"fastest synthesis vs np.random.choice: {best_synth[1]:.1f}x, {best_synth[0]} (target 5x) "
        f"{'met' if best_synth[1] >= 5 else 'NOT met'}"
    )
    return {"targets": targets, "lines": lines}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per path (default 5)")
    ap.add_argument("--seconds", type=float, default=1.5, help="CPU seconds per run and path (default 1.5)")
    ap.add_argument("--gradcheck", action="store_true", help="also time the m=100 gradient check (~20 s)")
    ap.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    ap.add_argument(
        "--no-papermill", action="store_true", help="skip timing 02_train under papermill (~25 s)"
    )
    args = ap.parse_args(argv)
    if args.runs < 1 or not args.seconds > 0:
        ap.error("--runs must be >= 1 and --seconds > 0")
    out = print
    t_start = time.perf_counter()

    info = header(out)

    text, source = load_text()
    chars = data_mod.build_vocab(text)
    data = data_mod.encode(text, chars)
    out(f"text: {source}: {len(text):,} characters, K = {len(chars)}")
    p0 = init_params(M, len(chars), SIG, np.random.default_rng(SEED))

    if fast.AVAILABLE:
        t = time.perf_counter()
        fast.warmup()
        out(
            f"numba kernels ready in {time.perf_counter() - t:.1f} s (compiled once, then loaded from the cache)"
        )

    with threadpool_limits(limits=1, user_api="blas"):
        updates, steps = bench_updates(p0, data, args.runs, args.seconds, out)
        agreement = check_agreement(p0, data, out)
        trained = steps[
            "numpy float64"
        ].trainer.state.params  # a model that has learned something: realistic samples
        synthesis = bench_synthesis(trained, int(data[0]), args.runs, args.seconds, out)
        batches = bench_batches(p0, data, args.seconds, out)
        one_stream = bench_one_stream(p0, data, args.seconds, out)
        grad = bench_gradcheck(len(chars), data, out) if args.gradcheck else None
    gated_run = gated.bench(
        data, chars, min(args.seconds, 1.0), min(args.runs, 3), out
    )  # wall clock, own thread limits
    papermill_run = (
        None if args.no_papermill else bench_papermill(source, updates["numpy float64"]["median"], out)
    )

    summary = summarize(updates, synthesis)
    out("")
    for line in summary["lines"]:
        out(line)

    info["load_average_end"] = gated.load_average()
    total = time.perf_counter() - t_start
    out("")
    out(f"load average at end: {info['load_average_end']}; total {total:.0f} s")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "machine": info,
            "text": {"source": source, "characters": len(text), "K": len(chars)},
            "settings": {
                "m": M,
                "seq_length": SEQ_LENGTH,
                "eta": ETA,
                "sig": SIG,
                "runs": args.runs,
                "seconds": args.seconds,
                "blas_threads": 1,
            },
            "updates": updates,
            "agreement_numba_vs_numpy_f64": agreement,
            "synthesis": synthesis,
            "batches_chars_per_second": batches,
            "one_stream_vs_batched": one_stream,
            "gated_vs_pytorch": gated_run,
            "papermill_02_train": papermill_run,
            "gradcheck": grad,
            "targets": summary["targets"],
            "total_seconds": total,
        }
        path.write_text(json.dumps(result, indent=2))
        out(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
