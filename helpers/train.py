"""The training loop: consecutive seq_length chunks of the text, clipping, AdaGrad, smooth loss.

Each update takes x = text[e : e+T], y = text[e+1 : e+T+1], runs forward and BPTT from
h_0 = hprev, clips the gradients to [-5, 5], takes one AdaGrad step and moves e on by T. When
fewer than T+1 characters remain, a new epoch starts at e = 0 with hprev = 0.

    smooth_loss = 0.999 * smooth_loss + 0.001 * loss   (the first loss starts it)

That is the assignment (the defaults). Options: B parallel streams (stream b reads the b-th of
B equal parts of the text, the loss averaged over streams), the LSTM cell, RMSProp or Adam, and a
held-out end of the text whose loss per character is evaluated every eval_every updates and
then picks the best model (else the lowest smooth loss does).
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

from . import cells, evaluate, optim, rnn, synth
from .checkpoint import Checkpoint
from .config import TrainConfig
from .params import ParamSet, init_params
from .progress import Progress


@dataclass
class TrainState:
    """Everything that changes during training; with the config it determines the rest of the run."""

    params: ParamSet
    mem: ParamSet  # the optimizer's first state array (AdaGrad: running sum of squared gradients)
    hprev: np.ndarray  # recurrent state carried between updates: (m,) for one RNN stream, else (B, S m)
    rng: np.random.Generator
    step: int = 0  # updates done
    position: int = 0  # e: index of the next chunk's first character (in every stream)
    epoch: int = 1
    smooth_loss: float = math.nan
    best_params: ParamSet | None = None
    best_smooth_loss: float = math.inf
    best_step: int = 0
    epoch_starts: list = field(default_factory=lambda: [0])  # step at which each epoch began
    log: list = field(default_factory=list)  # rows (step, loss, smooth_loss)
    samples: list = field(default_factory=list)  # {"step", "smooth_loss", "text"}
    mem2: ParamSet | None = None  # Adam's second moment
    val_log: list = field(default_factory=list)  # rows (step, chars_seen, seconds, val loss per char)
    best_val_loss: float = math.inf  # per character, when there is a validation split
    seconds: float = 0.0  # time spent in earlier runs of this training (resumed runs)

    @classmethod
    def fresh(cls, cfg: TrainConfig, K: int, rng: np.random.Generator) -> "TrainState":
        """Initial state: the assignment's initialisation drawn from ``rng``, zero recurrent state."""
        params = init_params(cfg.m, K, cfg.sig, rng, dtype=np.dtype(cfg.dtype), gates=cells.CELLS[cfg.cell])
        return cls(params=params, mem=params.zeros_like(), hprev=initial_state(cfg, params.flat.dtype), rng=rng,
                   best_params=params.copy(), mem2=params.zeros_like() if optim.SLOTS[cfg.optimizer] > 1 else None)

    @classmethod
    def resume(cls, last: Checkpoint, best: Checkpoint | None, cfg: TrainConfig, chars: list[str]) -> "TrainState":
        """The state saved in ``last`` (a "last" checkpoint) with its ``best`` companion, checked against the run.

        Raises ValueError when the checkpoint cannot continue this run exactly (another vocabulary,
        a setting of RESUME_KEYS that differs, or no optimizer state).
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
        differ = changed_settings(meta.get("config", {}), cfg)
        if last.params.m != cfg.m:
            differ["m"] = last.params.m
        if differ:
            raise ValueError("the checkpoint was trained with other settings than this run asks for; resume with "
                             + ", ".join(f"{k}={v!r}" for k, v in differ.items()) + " (or train from scratch).")
        dtype = np.dtype(cfg.dtype)
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        good_best = best is not None and best.step == meta["best_step"]  # m is checked above
        return cls(params=last.params.astype(dtype), mem=last.mem.astype(dtype),
                   mem2=last.mem2.astype(dtype) if last.mem2 is not None else None,
                   hprev=np.asarray(last.hprev, dtype).copy(), rng=rng,
                   step=last.step, position=meta["position"], epoch=meta["epoch"], smooth_loss=last.smooth_loss,
                   best_params=(best.params if good_best else last.params).astype(dtype),
                   best_smooth_loss=meta["best_smooth_loss"] if good_best else last.smooth_loss,
                   best_step=meta["best_step"] if good_best else last.step,
                   epoch_starts=list(meta["epoch_starts"]), log=[tuple(row) for row in meta["log"]],
                   samples=list(meta["samples"]), val_log=[tuple(r) for r in meta.get("val_log", [])],
                   best_val_loss=meta.get("best_val_loss", math.inf), seconds=meta.get("seconds", 0.0))


RESUME_KEYS = ("m", "cell", "batch_size", "optimizer", "seq_length", "eta", "sig", "dtype", "val_fraction", "eval_every")
"""Settings a resumed run must share with its checkpoint to go on exactly (n_updates and the
sampling, logging and checkpoint cadences, and the engine, may change)."""


def changed_settings(saved: dict, cfg: TrainConfig) -> dict:
    """``{name: saved value}`` for each of RESUME_KEYS on which ``cfg`` differs from ``saved``."""
    defaults = TrainConfig().as_dict()
    now = cfg.as_dict()
    return {k: saved.get(k, defaults[k]) for k in RESUME_KEYS if saved.get(k, defaults[k]) != now[k]}


def one_rnn_stream(cfg: TrainConfig) -> bool:
    """Whether the run is the assignment's shape, one vanilla-RNN stream (helpers.rnn's fast path)."""
    return cfg.cell == "rnn" and cfg.batch_size == 1


def initial_state(cfg: TrainConfig, dtype) -> np.ndarray:
    """The zero recurrent state: (m,) for one vanilla-RNN stream, else (B, S m)."""
    if one_rnn_stream(cfg):
        return np.zeros(cfg.m, dtype)
    return np.zeros((cfg.batch_size, cells.STATE_SIZES[cfg.cell] * cfg.m), dtype)


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss or gradient."""


class Trainer:
    """Runs updates on an encoded text, keeping the state and the preallocated buffers.

    Parameters
    ----------
    cfg : TrainConfig
    data : int array (N,)
        The encoded text; its last ``val_fraction`` is held out for validation.
    chars : list of str
        The vocabulary (index order).
    state : TrainState
    """

    def __init__(self, cfg: TrainConfig, data: np.ndarray, chars: list[str], state: TrainState):
        n_val = int(round(cfg.val_fraction * len(data)))
        self.data = data  # the whole text; training reads the first part, validation the held-out rest
        self.train_data, self.val_data = data[:len(data) - n_val], data[len(data) - n_val:]
        B, T = cfg.batch_size, cfg.seq_length
        self.L = len(self.train_data) // B  # characters per stream
        if self.L < T + 1:
            raise ValueError(
                f"the training text has {len(self.train_data)} characters: too few for {B} stream(s) of at least "
                f"seq_length + 1 = {T + 1}; use a longer text or a smaller seq_length or batch_size.")
        if cfg.val_fraction > 0 and n_val < 2:
            raise ValueError(f"val_fraction {cfg.val_fraction} leaves {n_val} character(s) of this {len(data)}-character "
                             "text for validation; use a larger val_fraction (or 0 for none).")
        self.cfg, self.chars, self.state = cfg, chars, state
        self.offsets = (np.arange(B) * self.L)[:, None] + np.arange(T)[None, :]  # stream b, step t -> index
        self.grads = state.params.zeros_like()
        self.tmp = np.empty_like(state.params.flat)
        self.slots = [s.flat for s in (state.mem, state.mem2) if s is not None]
        self.one_rnn_stream = one_rnn_stream(cfg)
        self.fast = self._fast_engine()
        workspace = self.fast.Workspace if self.fast is not None else rnn.Workspace
        self.ws = workspace(cfg.m, len(chars), T, state.params.flat.dtype) if self.one_rnn_stream else None
        self.started = time.perf_counter()

    def _fast_engine(self):
        """helpers.fast when ``engine="numba"`` can serve this run, else None (with a note why not)."""
        if self.cfg.engine != "numba":
            return None
        from . import fast

        if not fast.AVAILABLE or not self.one_rnn_stream:
            why = fast.REASON if not fast.AVAILABLE else "it serves the vanilla RNN with batch_size 1 only"
            print(f"engine 'numba' unavailable ({why}); using numpy")
            return None
        return fast

    @property
    def chars_seen(self) -> int:
        """Characters trained on so far: updates x streams x seq_length."""
        return self.state.step * self.cfg.batch_size * self.cfg.seq_length

    def next_chunk(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of the next update (shape (T,) for one RNN stream, else (B, T)).

        At the end of the (per-stream) text a new epoch starts at e = 0 with a zero state.
        """
        s, T = self.state, self.cfg.seq_length
        if s.position + T + 1 > self.L:
            s.position, s.epoch = 0, s.epoch + 1
            s.hprev[...] = 0.0
            s.epoch_starts.append(s.step)
        if self.one_rnn_stream:
            return self.train_data[s.position:s.position + T], self.train_data[s.position + 1:s.position + T + 1]
        idx = self.offsets + s.position
        return self.train_data[idx], self.train_data[idx + 1]

    def loss_and_grads(self, x, y) -> tuple[float, np.ndarray]:
        """Forward and BPTT of the current parameters on (x, y) from hprev; gradients into self.grads."""
        s = self.state
        if self.fast is not None:
            return self.fast.loss_and_grads(s.params, x, y, s.hprev, self.grads, self.ws)
        if self.one_rnn_stream:
            return rnn.loss_and_grads(s.params, x, y, s.hprev, self.grads, self.ws)
        return cells.loss_and_grads(self.cfg.cell, s.params, x, y, s.hprev, self.grads)

    def optimizer_step(self) -> None:
        """Clip the gradients to [-5, 5] and take one optimizer step (fused under numba)."""
        cfg, theta = self.cfg, self.state.params.flat
        if self.fast is not None and cfg.optimizer == "adagrad":
            self.fast.clip_adagrad_(theta, self.grads.flat, self.slots[0], cfg.eta)
            return
        optim.clip_(self.grads.flat)
        optim.OPTIMIZERS[cfg.optimizer](theta, self.grads.flat, self.slots, cfg.eta, self.state.step + 1, self.tmp)

    def update(self) -> float:
        """One update: forward, BPTT, clip, optimizer step, bookkeeping. Returns the loss."""
        s, cfg = self.state, self.cfg
        x, y = self.next_chunk()
        loss, hlast = self.loss_and_grads(x, y)
        g = self.grads.flat  # the dot product is the fast test; it can overflow in float32, so confirm
        if not math.isfinite(loss) or (not math.isfinite(np.dot(g, g)) and not np.isfinite(g).all()):
            raise NonFiniteLossError(
                f"update {s.step + 1} gave a non-finite loss or gradient (loss={loss}); training stopped and "
                "the last checkpoint was kept. Lower eta or check the data.")
        s.smooth_loss = loss if s.step == 0 else 0.999 * s.smooth_loss + 0.001 * loss
        if s.step == 0:
            self.record_sample(np.ravel(x)[0])  # before the first update: h0 = hprev, x0 = its first input
        self.optimizer_step()
        s.hprev, s.position, s.step = hlast, s.position + cfg.seq_length, s.step + 1
        if not len(self.val_data) and s.smooth_loss < s.best_smooth_loss:  # best model: lowest smooth loss
            self.keep_best()
        if s.step % cfg.log_every == 0 or s.step == 1:
            s.log.append((s.step, loss, s.smooth_loss))
        if s.step % cfg.sample_every == 0 and s.step <= cfg.sample_until:
            self.record_sample(self.train_data[s.position])  # x0: the next update's first input (stream 0)
        if len(self.val_data) and s.step % cfg.eval_every == 0:
            self.validate()
        return loss

    def keep_best(self) -> None:
        """Remember the current parameters as the best model."""
        s = self.state
        s.best_smooth_loss, s.best_step = s.smooth_loss, s.step
        np.copyto(s.best_params.flat, s.params.flat)

    def validate(self) -> float:
        """Validation loss per character now; logged, and the best model when it is the lowest."""
        s = self.state
        loss = evaluate.loss_per_char(self.cfg.cell, s.params, self.val_data)
        s.val_log.append((s.step, self.chars_seen, s.seconds + time.perf_counter() - self.started, loss))
        if loss < s.best_val_loss:
            s.best_val_loss = loss
            self.keep_best()
        return loss

    def record_sample(self, x0: int) -> None:
        """Synthesize sample_length characters from stream 0's state and the input character x0."""
        s = self.state
        h0 = s.hprev if s.hprev.ndim == 1 else s.hprev[0]
        sampler = self.fast.sample_indices if self.fast is not None else synth.sample_indices  # same draws
        idx, _ = sampler(s.params, h0, int(x0), self.cfg.sample_length, s.rng, cell=self.cfg.cell)
        s.samples.append({"step": s.step, "smooth_loss": s.smooth_loss, "text": "".join(self.chars[i] for i in idx)})

    def checkpoint(self, which: str, meta: dict) -> Checkpoint:
        """The ``"last"`` or ``"best"`` checkpoint of the current state."""
        s = self.state
        if which == "best":
            return Checkpoint(params=s.best_params, chars=self.chars, step=s.best_step,
                              smooth_loss=s.best_smooth_loss, meta={**meta, "kind": "best"})
        progress = {"position": s.position, "epoch": s.epoch, "rng_state": s.rng.bit_generator.state,
                    "epoch_starts": s.epoch_starts, "log": s.log, "samples": s.samples, "val_log": s.val_log,
                    "best_val_loss": s.best_val_loss, "best_step": s.best_step, "best_smooth_loss": s.best_smooth_loss,
                    "seconds": s.seconds + time.perf_counter() - self.started}
        return Checkpoint(params=s.params, chars=self.chars, step=s.step, smooth_loss=s.smooth_loss,
                          hprev=s.hprev, mem=s.mem, mem2=s.mem2, meta={**meta, **progress, "kind": "last"})

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

    def run_saving(self, n_updates: int, save) -> float:
        """:meth:`run` with ``save()`` at every checkpoint and once more on Ctrl-C (then re-raised).

        A non-finite loss raises before anything is saved, so the files on disk stay the last good ones.
        """
        try:
            return self.run(n_updates, on_checkpoint=save)
        except KeyboardInterrupt:
            save()
            print(f"interrupted at update {self.state.step}; its results, last.npz included, are saved")
            raise

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
