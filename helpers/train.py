"""The training loop: AdaGrad on consecutive seq_length chunks of the text, with smooth loss.

Each update takes x = text[e : e+T], y = text[e+1 : e+T+1], runs forward and BPTT from
h_0 = hprev, clips the gradients to [-5, 5], takes one AdaGrad step and moves e on by T. When
fewer than T+1 characters remain, a new epoch starts at e = 0 with hprev = 0.

    smooth_loss = 0.999 * smooth_loss + 0.001 * loss   (the first loss starts it)
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import optim, rnn, synth
from .checkpoint import Checkpoint
from .config import TrainConfig
from .params import ParamSet, init_params
from .progress import Progress


@dataclass
class TrainState:
    """Everything that changes during training; with the config it determines the rest of the run."""

    params: ParamSet
    mem: ParamSet  # AdaGrad's running sum of squared gradients
    hprev: np.ndarray  # (m,) hidden state carried between updates
    rng: np.random.Generator
    step: int = 0  # updates done
    position: int = 0  # e: index of the next chunk's first character
    epoch: int = 1
    smooth_loss: float = math.nan
    best_params: ParamSet | None = None
    best_smooth_loss: float = math.inf
    best_step: int = 0
    epoch_starts: list = field(default_factory=lambda: [0])  # step at which each epoch began
    log: list = field(default_factory=list)  # rows (step, loss, smooth_loss)
    samples: list = field(default_factory=list)  # {"step", "smooth_loss", "text"}

    @classmethod
    def fresh(cls, cfg: TrainConfig, K: int, rng: np.random.Generator) -> "TrainState":
        """Initial state: the assignment's initialisation drawn from ``rng``, hprev = 0."""
        params = init_params(cfg.m, K, cfg.sig, rng, dtype=np.dtype(cfg.dtype))
        return cls(params=params, mem=params.zeros_like(), hprev=np.zeros(cfg.m, params.flat.dtype), rng=rng,
                   best_params=params.copy())

    @classmethod
    def resume(cls, last: Checkpoint, best: Checkpoint | None, cfg: TrainConfig, chars: list[str]) -> "TrainState":
        """The state saved in ``last`` (a "last" checkpoint) with its ``best`` companion, checked against the run.

        Raises ValueError when the checkpoint cannot continue this run (other vocabulary, other m,
        or no optimizer state).
        """
        meta = last.meta
        if last.chars != chars:
            extra, missing = sorted(set(last.chars) - set(chars)), sorted(set(chars) - set(last.chars))
            raise ValueError(
                f"the checkpoint's vocabulary ({len(last.chars)} characters) does not match the text's ({len(chars)}): "
                f"only in the checkpoint {extra[:10]!r}, only in the text {missing[:10]!r}. Resume on the text it was "
                "trained on, or train from scratch (init_from='').")
        if last.mem is None or "rng_state" not in meta:
            raise ValueError("this checkpoint has no optimizer or random state (a best.npz?); resume from last.npz.")
        if last.params.m != cfg.m:
            raise ValueError(f"the checkpoint has m={last.params.m} but the run asks for m={cfg.m}; use m={last.params.m}.")
        dtype = np.dtype(cfg.dtype)
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        params = last.params.astype(dtype)
        good_best = best is not None and best.step == meta["best_step"] and best.params.m == cfg.m
        return cls(params=params, mem=last.mem.astype(dtype), hprev=np.asarray(last.hprev, dtype).copy(), rng=rng,
                   step=last.step, position=meta["position"], epoch=meta["epoch"], smooth_loss=last.smooth_loss,
                   best_params=(best.params if good_best else last.params).astype(dtype),
                   best_smooth_loss=meta["best_smooth_loss"] if good_best else last.smooth_loss,
                   best_step=meta["best_step"] if good_best else last.step,
                   epoch_starts=list(meta["epoch_starts"]), log=[tuple(row) for row in meta["log"]],
                   samples=list(meta["samples"]))


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss or gradient."""


class Trainer:
    """Runs updates on an encoded text, keeping the state and the preallocated buffers.

    Parameters
    ----------
    cfg : TrainConfig
    data : int array (N,)
        The encoded text.
    chars : list of str
        The vocabulary (index order).
    state : TrainState
    """

    def __init__(self, cfg: TrainConfig, data: np.ndarray, chars: list[str], state: TrainState):
        if len(data) < cfg.seq_length + 1:
            raise ValueError(f"the text has {len(data)} characters, fewer than seq_length + 1 = {cfg.seq_length + 1}; "
                             "use a longer text or a smaller seq_length.")
        self.cfg, self.data, self.chars, self.state = cfg, data, chars, state
        self.ws = rnn.Workspace(cfg.m, len(chars), cfg.seq_length, state.params.flat.dtype)
        self.grads = state.params.zeros_like()
        self.tmp = np.empty_like(state.params.flat)

    def next_chunk(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the next update, starting a new epoch (e = 0, hprev = 0) at the text's end."""
        s, T = self.state, self.cfg.seq_length
        if s.position + T + 1 > len(self.data):
            s.position, s.epoch = 0, s.epoch + 1
            s.hprev[...] = 0.0
            s.epoch_starts.append(s.step)
        return self.data[s.position:s.position + T], self.data[s.position + 1:s.position + T + 1]

    def update(self) -> float:
        """One update: forward, BPTT, clip, AdaGrad, bookkeeping. Returns the loss."""
        s, cfg = self.state, self.cfg
        x, y = self.next_chunk()
        loss, hlast = rnn.loss_and_grads(s.params, x, y, s.hprev, self.grads, self.ws)
        if not math.isfinite(loss) or not math.isfinite(np.dot(self.grads.flat, self.grads.flat)):
            raise NonFiniteLossError(
                f"update {s.step + 1} gave a non-finite loss or gradient (loss={loss}); training stopped and "
                "the last checkpoint was kept. Lower eta or check the data.")
        s.smooth_loss = loss if s.step == 0 else 0.999 * s.smooth_loss + 0.001 * loss
        if s.step == 0 and cfg.sample_until >= 0:
            self.record_sample(x[0])  # before the first update: h0 = hprev, x0 = its first input
        optim.clip_(self.grads.flat)
        optim.adagrad_(s.params.flat, self.grads.flat, s.mem.flat, cfg.eta, tmp=self.tmp)
        s.hprev, s.position, s.step = hlast, s.position + cfg.seq_length, s.step + 1
        if s.smooth_loss < s.best_smooth_loss:  # best model: the lowest smooth loss so far
            s.best_smooth_loss, s.best_step = s.smooth_loss, s.step
            np.copyto(s.best_params.flat, s.params.flat)
        if s.step % cfg.log_every == 0 or s.step == 1:
            s.log.append((s.step, loss, s.smooth_loss))
        if s.step % cfg.sample_every == 0 and s.step <= cfg.sample_until:
            self.record_sample(self.data[s.position])  # x0: the next update's first input
        return loss

    def record_sample(self, x0: int) -> None:
        """Synthesize sample_length characters from h0 = hprev and the input character x0."""
        s = self.state
        idx, _ = synth.sample_indices(s.params, s.hprev, int(x0), self.cfg.sample_length, s.rng)
        s.samples.append({"step": s.step, "smooth_loss": s.smooth_loss, "text": "".join(self.chars[i] for i in idx)})

    def checkpoint(self, which: str, meta: dict) -> Checkpoint:
        """The ``"last"`` or ``"best"`` checkpoint of the current state."""
        s = self.state
        position = {"position": s.position, "epoch": s.epoch, "rng_state": s.rng.bit_generator.state,
                    "epoch_starts": s.epoch_starts, "log": s.log, "samples": s.samples}
        if which == "best":
            return Checkpoint(params=s.best_params, chars=self.chars, step=s.best_step,
                              smooth_loss=s.best_smooth_loss, meta={**meta, "kind": "best"})
        return Checkpoint(params=s.params, chars=self.chars, step=s.step, smooth_loss=s.smooth_loss,
                          hprev=s.hprev, mem=s.mem, meta={**meta, **position, "kind": "last",
                                                          "best_step": s.best_step,
                                                          "best_smooth_loss": s.best_smooth_loss})

    def run(self, n_updates: int, on_checkpoint=None, report_every: int | None = None, out=None,
            progress: bool = True) -> float:
        """Update until ``n_updates`` updates are done in total; returns the seconds taken.

        ``on_checkpoint()`` is called every ``cfg.checkpoint_every`` updates (the caller writes the
        final results). A line goes to ``out`` every ``report_every`` updates (default
        ``sample_every``; default: printed beside the bar), and a progress bar with the smooth loss is shown when ``progress``.
        """
        start = time.perf_counter()
        bar = Progress(n_updates, "updates", initial=self.state.step) if progress else None
        try:
            with threadpool_limits(limits=1, user_api="blas"), interrupt_between_updates() as stop:
                out = out or (bar.write if bar is not None else print)
                self._loop(n_updates, on_checkpoint, report_every or self.cfg.sample_every, out, bar, stop)
        finally:
            if bar is not None:
                bar.close(self.smooth_history)
        return time.perf_counter() - start

    def smooth_history(self) -> list[float]:
        """The logged smooth losses, for the live plot."""
        return [row[2] for row in self.state.log]

    def _loop(self, n_updates, on_checkpoint, report_every, out, bar, stop) -> None:
        s, last_report = self.state, (self.state.step, time.perf_counter())
        while s.step < n_updates:
            self.update()
            if stop:
                raise KeyboardInterrupt(f"interrupted after update {s.step}")
            if s.step % self.cfg.checkpoint_every == 0 and on_checkpoint is not None:
                on_checkpoint()
            if bar is not None and s.step % 100 == 0:
                bar.update(s.step, f"smooth loss {s.smooth_loss:.2f}", self.smooth_history)
            if s.step % report_every == 0 or s.step == n_updates:
                now = time.perf_counter()
                rate = (s.step - last_report[0]) / max(now - last_report[1], 1e-9)
                out(f"update {s.step:>7,}/{n_updates:,}  epoch {s.epoch}  smooth loss {s.smooth_loss:8.3f}  "
                    f"{rate:,.0f} updates/s")
                last_report = (s.step, now)


@contextlib.contextmanager
def interrupt_between_updates():
    """Turn Ctrl-C (SIGINT) into a KeyboardInterrupt between two updates, never inside one.

    Yields a list that becomes non-empty once Ctrl-C was pressed; the loop checks it after each
    update, so a checkpoint written on interrupt holds a consistent state. Outside the main thread
    (where signals cannot be caught) nothing changes.
    """
    stop: list = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def new_run_id() -> str:
    """A short identifier that ties a run's result files together."""
    return uuid.uuid4().hex[:12]
