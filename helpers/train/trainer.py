"""The training loop: consecutive seq_length chunks of the text, clipping, AdaGrad, smooth loss.

Each update takes x = text[e : e+T], y = text[e+1 : e+T+1], runs forward and BPTT from
h_0 = hprev, clips the gradients to [-5, 5], takes one AdaGrad step and moves e on by T. When
fewer than T+1 characters remain, a new epoch starts at e = 0 with hprev = 0.

    smooth_loss = 0.999 * smooth_loss + 0.001 * loss   (the first loss starts it)

That is the assignment (the defaults). Options: B parallel streams (stream b reads the b-th of
B equal parts of the text, the loss averaged over streams), the LSTM cell, RMSProp or Adam, and a
held-out end of the text whose loss per character is evaluated every eval_every updates and
then picks the best model (else the lowest smooth loss does); the GRU, stacked layers and dropout;
eta decayed per epoch or on a cosine with warm-up (:mod:`helpers.train.schedule`); a test part of
the text, just before the validation part, that training never reads.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from ..model import cells
from ..model.params import ParamSet
from . import engine, evaluate, optim, schedule, session
from .checkpoint import Checkpoint
from .config import TrainConfig

SMOOTHING = 0.999
"""smooth_loss = SMOOTHING * smooth_loss + (1 - SMOOTHING) * loss."""
_NEW = round(1 - SMOOTHING, 12)  # 0.001 exactly as written, not 1 - 0.999 in binary


@dataclass
class TrainState:
    """Everything that changes during training; with the config it determines the rest of the run."""

    params: ParamSet
    mem: ParamSet  # the optimizer's first state array (AdaGrad: running sum of squared gradients)
    hprev: np.ndarray  # recurrent state carried between updates, (B, S m)
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
    def fresh(cls, cfg: TrainConfig, K: int, rng: np.random.Generator) -> TrainState:
        """Initial state: the assignment's initialisation drawn from ``rng``, zero recurrent state."""
        params = cells.init_params(
            cfg.cell,
            cfg.m,
            K,
            cfg.sig,
            rng,
            dtype=np.dtype(cfg.dtype),
            layers=cfg.n_layers,
            init=cfg.init_scheme,
        )
        return cls(
            params=params,
            mem=params.zeros_like(),
            hprev=initial_state(cfg, params.flat.dtype),
            rng=rng,
            best_params=params.copy(),
            mem2=params.zeros_like() if optim.SLOTS[cfg.optimizer] > 1 else None,
        )

    @classmethod
    def resume(cls, last: Checkpoint, cfg: TrainConfig, chars: list[str]) -> TrainState:
        """The state saved in ``last`` (a "last" checkpoint, which holds the best model too), checked
        against the run.

        Raises ValueError when the checkpoint cannot continue this run exactly (another vocabulary,
        a setting of RESUME_KEYS that differs, or no optimizer state).
        """
        meta = last.meta
        if last.chars != chars:
            extra, missing = sorted(set(last.chars) - set(chars)), sorted(set(chars) - set(last.chars))
            raise ValueError(
                f"the checkpoint's vocabulary ({len(last.chars)} characters) does not match the text's ({len(chars)}): "
                f"only in the checkpoint {extra[:10]!r}, only in the text {missing[:10]!r}. Resume on the text it was "
                "trained on, or train from scratch (init_from='')."
            )
        if last.mem is None or last.best is None or "rng_state" not in meta:
            raise ValueError(
                "this checkpoint has no optimizer or random state (a best.npz?); resume from last.npz."
            )
        differ = changed_settings(meta.get("config", {}), cfg)
        if last.params.m != cfg.m:
            differ["m"] = last.params.m
        if differ:
            raise ValueError(
                "the checkpoint was trained with other settings than this run asks for; resume with "
                + ", ".join(f"{k}={v!r}" for k, v in differ.items())
                + " (or train from scratch)."
            )
        if last.hprev is None or last.hprev.shape != initial_state(cfg, last.hprev.dtype).shape:
            raise ValueError(
                f"the checkpoint's recurrent state has shape {getattr(last.hprev, 'shape', None)}, not the "
                f"{initial_state(cfg, np.float64).shape} of this run's streams; resume from a last.npz "
                "written by this version."
            )
        dtype = np.dtype(cfg.dtype)
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        return cls(
            params=last.params.astype(dtype),
            mem=last.mem.astype(dtype),
            mem2=last.mem2.astype(dtype) if last.mem2 is not None else None,
            hprev=np.array(last.hprev, dtype),
            rng=rng,
            step=last.step,
            position=meta["position"],
            epoch=meta["epoch"],
            smooth_loss=last.smooth_loss,
            best_params=last.best.astype(dtype),
            best_smooth_loss=meta["best_smooth_loss"],
            best_step=meta["best_step"],
            epoch_starts=list(meta["epoch_starts"]),
            log=[tuple(row) for row in meta["log"]],
            samples=list(meta["samples"]),
            val_log=[tuple(r) for r in meta.get("val_log", [])],
            best_val_loss=meta.get("best_val_loss", math.inf),
            seconds=meta.get("seconds", 0.0),
        )


RESUME_KEYS = (
    "m",
    "cell",
    "batch_size",
    "optimizer",
    "seq_length",
    "eta",
    "sig",
    "dtype",
    "val_fraction",
    "eval_every",
    "n_layers",
    "dropout",
    "dropout_mask",
    "lr_decay",
    "lr_schedule",
    "warmup",
    "test_fraction",
    "clip",
    "clip_norm",
    "weight_decay",
    "time_budget",
)
"""Settings a resumed run must share with its checkpoint to go on exactly (n_updates and the
sampling, logging and checkpoint cadences, and the engine, may change; n_updates not on a cosine
schedule, whose length it is; ``init`` plays no part in a run that resumes). A run with a
``time_budget`` resumes with the seconds it had spent, but follows the clock, not a fixed sequence."""


def changed_settings(saved: dict, cfg: TrainConfig) -> dict:
    """``{name: saved value}`` for each of RESUME_KEYS on which ``cfg`` differs from ``saved``
    (settings a checkpoint predates count as their defaults)."""
    defaults = TrainConfig().as_dict()
    now = cfg.as_dict()
    keys = RESUME_KEYS + (("n_updates",) if cfg.lr_schedule == "cosine" else ())
    return {k: saved.get(k, defaults[k]) for k in keys if saved.get(k, defaults[k]) != now[k]}


def initial_state(cfg: TrainConfig, dtype) -> np.ndarray:
    """The zero recurrent state of the run's streams, (B, L S m)."""
    return cells.get(cfg.cell).initial_state(cfg.m, cfg.batch_size, dtype, cfg.n_layers)


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss or gradient."""


class Trainer:
    """Runs updates on an encoded text, keeping the state and the preallocated buffers.

    Parameters
    ----------
    cfg : TrainConfig
    data : int array (N,)
        The encoded text; its last ``val_fraction`` is held out for validation, the ``test_fraction``
        before it for the final test.
    chars : list of str
        The vocabulary (index order).
    state : TrainState
    """

    def __init__(self, cfg: TrainConfig, data: np.ndarray, chars: list[str], state: TrainState):
        n_val, n_test = int(round(cfg.val_fraction * len(data))), int(round(cfg.test_fraction * len(data)))
        self.data = data  # the whole text: [ training | test | validation ]
        self.train_data = data[: len(data) - n_val - n_test]
        self.test_data, self.val_data = (
            data[len(data) - n_val - n_test : len(data) - n_val],
            data[len(data) - n_val :],
        )
        B, T = cfg.batch_size, cfg.seq_length
        self.L = len(self.train_data) // B  # characters per stream
        if self.L < T + 1:
            raise ValueError(
                f"the training text has {len(self.train_data)} characters: too few for {B} stream(s) of at least "
                f"seq_length + 1 = {T + 1}; use a longer text or a smaller seq_length or batch_size."
            )
        if cfg.val_fraction > 0 and n_val < 2:
            raise ValueError(
                f"val_fraction {cfg.val_fraction} leaves {n_val} character(s) of this {len(data)}-character "
                "text for validation; use a larger val_fraction (or 0 for none)."
            )
        if cfg.test_fraction > 0 and n_test < 2:
            raise ValueError(
                f"test_fraction {cfg.test_fraction} leaves {n_test} character(s) of this {len(data)}-character "
                "text for the test; use a larger test_fraction (or 0 for none)."
            )
        self.cfg, self.chars, self.state = cfg, chars, state
        self.offsets = (np.arange(B) * self.L)[:, None] + np.arange(T)[None, :]  # stream b, step t -> index
        self.grads = state.params.zeros_like()
        self.tmp = np.empty_like(state.params.flat)
        self.slots = [s.flat for s in (state.mem, state.mem2) if s is not None]
        self.engine = engine.make(cfg, len(chars), state.params.flat.dtype)
        self.decay = weight_mask(state.params) if cfg.weight_decay else None
        self.started = time.perf_counter()

    @property
    def chars_seen(self) -> int:
        """Characters trained on so far: updates x streams x seq_length."""
        return self.state.step * self.cfg.batch_size * self.cfg.seq_length

    def next_chunk(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of the next update, shape (B, T).

        At the end of the (per-stream) text a new epoch starts at e = 0 with a zero state.
        """
        s, T = self.state, self.cfg.seq_length
        if s.position + T + 1 > self.L:
            s.position, s.epoch = 0, s.epoch + 1
            s.hprev[...] = 0.0
            s.epoch_starts.append(s.step)
        if self.cfg.batch_size == 1:  # views, no copies: x = text[e : e+T], y = text[e+1 : e+T+1]
            e = s.position
            return self.train_data[None, e : e + T], self.train_data[None, e + 1 : e + T + 1]
        idx = self.offsets + s.position
        return self.train_data[idx], self.train_data[idx + 1]

    def loss_and_grads(self, x, y) -> tuple[float, np.ndarray]:
        """Forward and BPTT of the current parameters on (x, y) from hprev; gradients into self.grads.

        With dropout, the masks of this update are drawn from the run's rng first.
        """
        s, cfg = self.state, self.cfg
        masks = None
        if cfg.dropout > 0:
            masks = cells.dropout_masks(
                s.rng,
                cfg.dropout,
                cfg.n_layers,
                *x.T.shape,
                cfg.m,
                s.params.flat.dtype,
                locked=cfg.dropout_mask == "locked",
            )
        return self.engine.loss_and_grads(s.params, x, y, s.hprev, self.grads, masks)

    def update(self) -> float:
        """One update: forward, BPTT, clip, optimizer step, bookkeeping. Returns the loss."""
        s, cfg = self.state, self.cfg
        x, y = self.next_chunk()
        loss, hlast = self.loss_and_grads(x, y)
        g = self.grads.flat  # the dot product is the fast test; it can overflow in float32, so confirm
        if not math.isfinite(loss) or (not math.isfinite(np.dot(g, g)) and not np.isfinite(g).all()):
            raise NonFiniteLossError(
                f"update {s.step + 1} gave a non-finite loss or gradient (loss={loss}); training stopped and "
                "the last checkpoint was kept. Lower eta or check the data."
            )
        s.smooth_loss = loss if s.step == 0 else SMOOTHING * s.smooth_loss + _NEW * loss
        if s.step == 0:
            self.record_sample(x[0, 0])  # before the first update: h0 = hprev, x0 = its first input
        self.engine.step(s.params.flat, g, self.slots, s.step + 1, self.tmp, self.eta(), self.decay)
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

    def eta(self) -> float:
        """The learning rate of the update about to be taken (see :mod:`helpers.train.schedule`)."""
        return schedule.learning_rate(self.cfg, self.state.step + 1, self.state.epoch, self.seconds)

    def out_of_time(self) -> bool:
        """Whether the run's ``time_budget`` (if any) is spent."""
        return bool(self.cfg.time_budget) and self.seconds >= self.cfg.time_budget

    def test(self, params: ParamSet | None = None) -> float | None:
        """Loss per character of ``params`` (default: the best model) on the test part, None without one.

        Forward only, no random draws: the test never changes the run."""
        if not len(self.test_data):
            return None
        return evaluate.loss_per_char(self.cfg.cell, params or self.state.best_params, self.test_data)

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
        idx, _ = self.engine.sampler(
            s.params, s.hprev[0], int(x0), self.cfg.sample_length, s.rng, cell=self.cfg.cell
        )
        s.samples.append(
            {"step": s.step, "smooth_loss": s.smooth_loss, "text": "".join(self.chars[i] for i in idx)}
        )

    def checkpoint(self, which: str, meta: dict) -> Checkpoint:
        """The ``"last"`` checkpoint of the current state (the best model inside), or the ``"best"`` one."""
        s = self.state
        if which == "best":
            return Checkpoint(
                params=s.best_params,
                chars=self.chars,
                step=s.best_step,
                smooth_loss=s.best_smooth_loss,
                meta={**meta, "kind": "best"},
            )
        progress = {
            "position": s.position,
            "epoch": s.epoch,
            "rng_state": s.rng.bit_generator.state,
            "epoch_starts": s.epoch_starts,
            "log": s.log,
            "samples": s.samples,
            "val_log": s.val_log,
            "best_val_loss": s.best_val_loss,
            "best_step": s.best_step,
            "best_smooth_loss": s.best_smooth_loss,
            "seconds": self.seconds,
        }
        return Checkpoint(
            params=s.params,
            chars=self.chars,
            step=s.step,
            smooth_loss=s.smooth_loss,
            hprev=s.hprev,
            mem=s.mem,
            mem2=s.mem2,
            best=s.best_params,
            meta={**meta, **progress, "kind": "last"},
        )

    @property
    def seconds(self) -> float:
        """Seconds of training so far, earlier sessions of a resumed run included."""
        return self.state.seconds + time.perf_counter() - self.started

    def run(self, n_updates: int, **options) -> float:
        """Update until ``n_updates`` updates are done in total; see :func:`helpers.train.session.run`."""
        return session.run(self, n_updates, **options)

    def run_saving(self, n_updates: int, save) -> float:
        """Update until ``n_updates`` with ``save()`` at every checkpoint and on Ctrl-C; see
        :func:`helpers.train.session.run_saving`."""
        return session.run_saving(self, n_updates, save)

    def smooth_history(self) -> list[float]:
        """The logged smooth losses, for the live plot."""
        return [row[2] for row in self.state.log]


def new_run_id() -> str:
    """A short identifier that ties a run's result files together."""
    return uuid.uuid4().hex[:12]


def weight_mask(params: ParamSet) -> np.ndarray:
    """1 on the weights (U, W, V of every layer), 0 on the biases (b, c): what weight decay shrinks."""
    mask = params.zeros_like()
    for name in params.names:
        if name[0] in "UWV":
            mask[name][...] = 1.0
    return mask.flat
