"""PyTorch's CPU training throughput on the gated cells, for ``benchmarks.bench`` to compare with.

    /path/to/python-with-torch benchmarks/torch_ref.py --cell gru --threads 1 [--m 256 --batch 32 ...]

Prints one JSON object: characters trained on per wall-clock second (median and all runs) and
per second of the process's CPU time (every thread's),
the settings and the versions. It imports torch and numpy only (never the project), so any
interpreter that has torch can run it; torch is never a dependency of the project. The bench
starts it in a subprocess, one process per thread count, so ``torch.set_num_threads`` is the
only thread setting in force.

One update is what a PyTorch user writes for a char-RNN: the input as one-hot vectors
(``F.one_hot(x, K).float()``, T x B x K; ``--input embedding`` uses ``nn.Embedding(K, K)``
instead), ``nn.GRU``/``nn.LSTM`` (m units, ``--layers`` layers, ``--dropout`` between layers),
``nn.Linear(m, K)``, ``F.cross_entropy`` summed over the steps and averaged over the streams (the
project's loss), ``backward``, ``clip_grad_value_(5)`` and one ``torch.optim.Adam`` step, in
float32, with the state carried between updates and detached (truncated BPTT).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def build(torch, args):
    nn = torch.nn
    rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[args.cell]
    rnn = rnn_cls(args.K, args.m, num_layers=args.layers, dropout=args.dropout if args.layers > 1 else 0.0)
    head = nn.Linear(args.m, args.K)
    embed = nn.Embedding(args.K, args.K) if args.input == "embedding" else None
    modules = [rnn, head] + ([embed] if embed is not None else [])
    params = [p for mod in modules for p in mod.parameters()]
    opt = torch.optim.Adam(params, lr=args.eta)
    return rnn, head, embed, params, opt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-length", type=int, default=50)
    ap.add_argument("--K", type=int, default=80)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--eta", type=float, default=0.003)
    ap.add_argument("--input", choices=("onehot", "embedding"), default="onehot")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5, help="wall-clock seconds per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed updates first")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rnn, head, embed, params, opt = build(torch, args)
    rnn.train()
    T, B, K = args.seq_length, args.batch, args.K
    data = torch.from_numpy(np.random.default_rng(0).integers(0, K, 200_000).astype(np.int64))
    offsets = torch.arange(B)[None, :] * (len(data) // B) + torch.arange(T)[:, None]  # (T, B), time-major
    shape = (args.layers, B, args.m)
    state = (torch.zeros(shape), torch.zeros(shape)) if args.cell == "lstm" else torch.zeros(shape)
    pos = 0

    def update():
        nonlocal state, pos
        if pos + T + 1 > len(data) // B:
            pos = 0
        idx = offsets + pos
        x, y = data[idx], data[idx + 1]
        pos += T
        inp = embed(x) if embed is not None else F.one_hot(x, K).float()  # (T, B, K)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        out, state = rnn(inp, state)
        logits = head(out)  # (T, B, K)
        loss = F.cross_entropy(logits.reshape(T * B, K), y.reshape(-1), reduction="sum") / B
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        return loss

    for _ in range(args.warmup):
        update()
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            update()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= args.seconds:
                break
        rates.append(n * B * T / dt)
        cpu_rates.append(n * B * T / (time.process_time() - c0))
    print(
        json.dumps(
            {
                "chars_per_second": statistics.median(rates),
                "runs": rates,
                "cell": args.cell,
                "chars_per_cpu_second": statistics.median(cpu_rates),
                "cpu_runs": cpu_rates,
                "threads": args.threads,
                "torch_threads": torch.get_num_threads(),
                "m": args.m,
                "batch": B,
                "seq_length": T,
                "K": K,
                "layers": args.layers,
                "dropout": args.dropout,
                "input": args.input,
                "dtype": "float32",
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": sys.version.split()[0],
                "mkldnn": bool(torch.backends.mkldnn.is_available()),
                "blas": "mkl" if "BLAS_INFO=mkl" in torch.__config__.show() else "other",
                "load_average": [round(v, 2) for v in os.getloadavg()],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
