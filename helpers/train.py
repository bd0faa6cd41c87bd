"""The training loop: AdaGrad on consecutive seq_length chunks of the text, with smooth loss.

Each update takes x = text[e : e+T], y = text[e+1 : e+T+1], runs forward and BPTT from
h_0 = hprev, clips the gradients to [-5, 5], takes one AdaGrad step and moves e on by T. When
fewer than T+1 characters remain, a new epoch starts at e = 0 with hprev = 0.

    smooth_loss = 0.999 * smooth_loss + 0.001 * loss   (the first loss starts it)
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import optim, rnn, synth
from .checkpoint import Checkpoint
from .config import TrainConfig
from .params import ParamSet, init_params


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
        position = {"position": s.position, "epoch": s.epoch, "rng_state": s.rng.bit_generator.state}
        if which == "best":
            return Checkpoint(params=s.best_params, chars=self.chars, step=s.best_step,
                              smooth_loss=s.best_smooth_loss, meta={**meta, "kind": "best"})
        return Checkpoint(params=s.params, chars=self.chars, step=s.step, smooth_loss=s.smooth_loss,
                          hprev=s.hprev, mem=s.mem, meta={**meta, **position, "kind": "last",
                                                          "best_step": s.best_step,
                                                          "best_smooth_loss": s.best_smooth_loss})

    def run(self, n_updates: int, on_checkpoint=None, report_every: int | None = None, out=print) -> float:
        """Update until ``n_updates`` updates are done in total; returns the seconds taken.

        ``on_checkpoint()`` is called every ``cfg.checkpoint_every`` updates (the caller writes the
        final results). Progress lines go to ``out`` every ``report_every`` updates.
        """
        start = time.perf_counter()
        report_every = report_every or self.cfg.sample_every
        with threadpool_limits(limits=1, user_api="blas"):  # small products: one thread is faster
            self._loop(n_updates, on_checkpoint, report_every, out)
        return time.perf_counter() - start

    def _loop(self, n_updates, on_checkpoint, report_every, out) -> None:
        s, last_report = self.state, (self.state.step, time.perf_counter())
        while s.step < n_updates:
            self.update()
            if s.step % self.cfg.checkpoint_every == 0 and on_checkpoint is not None:
                on_checkpoint()
            if s.step % report_every == 0 or s.step == n_updates:
                now = time.perf_counter()
                rate = (s.step - last_report[0]) / max(now - last_report[1], 1e-9)
                out(f"update {s.step:>7,}/{n_updates:,}  epoch {s.epoch}  smooth loss {s.smooth_loss:8.3f}  "
                    f"{rate:,.0f} updates/s")
                last_report = (s.step, now)


def new_run_id() -> str:
    """A short identifier that ties a run's result files together."""
    return uuid.uuid4().hex[:12]
