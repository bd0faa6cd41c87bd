"""Training configuration: defaults, type coercion and range checks with helpful messages.

Values may arrive from papermill as strings (``-r m 100``) or from Python; each is coerced to
its declared type or rejected with a message that names the parameter and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..model import cells
from . import optim

DTYPES = ("float64", "float32")
CELLS = tuple(cells.CELLS)
OPTIMIZERS = tuple(optim.OPTIMIZERS)
ENGINES = ("numpy", "numba", "auto")
SCHEDULES = ("constant", "cosine")
INITS = ("auto", *cells.INITS)
DROPOUT_MASKS = ("step", "locked")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the assignment's defaults).

    Attributes
    ----------
    m : hidden state size.
    eta : AdaGrad learning rate.
    seq_length : characters per update (T).
    sig : standard deviation of the initial U, W, V.
    n_updates : total number of updates.
    sample_every, sample_until, sample_length : synthesize ``sample_length`` characters before
        the first update and every ``sample_every`` updates up to ``sample_until``.
    log_every : write a row of train_log.csv every this many updates.
    checkpoint_every : write last.npz and best.npz every this many updates.
    dtype : "float64" (default, exact) or "float32" (faster).
    engine : "numpy" (default), "numba" (JIT-compiled update for the vanilla RNN with one stream and
        for the GRU and the LSTM; falls back to numpy, with a note, when numba is not installed) or
        "auto" (numba for the GRU and the LSTM when numba is installed, else numpy).
    cell : "rnn" (the assignment's vanilla RNN), "lstm" or "gru".
    batch_size : B parallel streams through the text; 1 is the assignment's training.
    val_fraction : the last part of the text held out for validation (0: none).
    eval_every : evaluate the validation loss every this many updates (and at the end).
    optimizer : "adagrad" (the assignment's), "rmsprop" or "adam".
    n_layers : stacked recurrent layers (1 is the assignment's).
    dropout : inverted-dropout rate on each layer's output h_t (between layers and before the output
        layer), in training only; 0 (default) for none.
    dropout_mask : "step" (default: a new mask at every step) or "locked" (one mask per stream and
        update, the same at every step: variational dropout).
    lr_decay : eta is multiplied by this at each new epoch (char-rnn style); 1 (default) keeps it.
    lr_schedule : "constant" (default; with lr_decay) or "cosine" (eta * (1 + cos(pi t / n_updates)) / 2).
    warmup : updates over which eta rises linearly from eta / warmup to eta (0: none).
    test_fraction : the part of the text just before the validation part (the end when there is
        none) held out as a test set, evaluated once at the end with the best model (0: none).
    init : the initial weights: "auto" (default: the assignment's for the vanilla RNN, "orthogonal"
        for the LSTM and the GRU), "assignment" (N(0, sig^2)), "uniform" (PyTorch's U(-1/sqrt(m),
        1/sqrt(m))) or "orthogonal" (orthogonal W blocks, Xavier-uniform U and V); see :attr:`init_scheme`.
    clip : every gradient entry is clipped to [-clip, clip] (the assignment's 5; 0: no elementwise clip).
    clip_norm : then the gradient is scaled to an L2 norm of at most clip_norm over all parameters (0: no).
    weight_decay : decoupled weight decay (AdamW's): the weights U, W, V shrink by eta * weight_decay
        of themselves at every update, the biases do not (0: none).
    time_budget : seconds of training: the run stops when they are spent (or at n_updates), and a
        cosine schedule stretches over them instead of over n_updates (0: none).
    """

    m: int = 100
    eta: float = 0.1
    seq_length: int = 25
    sig: float = 0.01
    n_updates: int = 300_000
    sample_every: int = 10_000
    sample_until: int = 100_000
    sample_length: int = 200
    log_every: int = 100
    checkpoint_every: int = 10_000
    dtype: str = "float64"
    engine: str = "numpy"
    cell: str = "rnn"
    batch_size: int = 1
    val_fraction: float = 0.0
    eval_every: int = 10_000
    optimizer: str = "adagrad"
    n_layers: int = 1
    dropout: float = 0.0
    dropout_mask: str = "step"
    lr_decay: float = 1.0
    lr_schedule: str = "constant"
    warmup: int = 0
    test_fraction: float = 0.0
    init: str = "auto"
    clip: float = 5.0
    clip_norm: float = 0.0
    weight_decay: float = 0.0
    time_budget: float = 0.0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, coerce(f.name, getattr(self, f.name), f.type))
        positive(
            self,
            "m",
            "eta",
            "seq_length",
            "sig",
            "n_updates",
            "sample_every",
            "log_every",
            "checkpoint_every",
            "batch_size",
            "eval_every",
            "n_layers",
            "lr_decay",
        )
        at_least(
            self,
            0,
            "sample_until",
            "sample_length",
            "val_fraction",
            "dropout",
            "warmup",
            "test_fraction",
            "clip",
            "clip_norm",
            "weight_decay",
            "time_budget",
        )
        for name, allowed in (
            ("dtype", DTYPES),
            ("engine", ENGINES),
            ("cell", CELLS),
            ("optimizer", OPTIMIZERS),
            ("lr_schedule", SCHEDULES),
            ("init", INITS),
            ("dropout_mask", DROPOUT_MASKS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not self.val_fraction < 0.5:
            raise ValueError(
                f"val_fraction must be in [0, 0.5), e.g. 0.05 for the last 5%, got {self.val_fraction!r}"
            )
        if not self.val_fraction + self.test_fraction < 0.5:
            raise ValueError(
                f"test_fraction must be in [0, 0.5 - val_fraction), e.g. 0.05, so that most of the text "
                f"is trained on; got {self.test_fraction!r} with val_fraction {self.val_fraction!r}"
            )
        if not self.dropout < 1:
            raise ValueError(
                f"dropout must be in [0, 1), the probability of dropping a unit, e.g. 0.1; "
                f"got {self.dropout!r}"
            )
        if not self.lr_decay <= 1:
            raise ValueError(
                f"lr_decay must be in (0, 1], the factor eta is multiplied by at each new epoch "
                f"(e.g. 0.95; 1 keeps eta), got {self.lr_decay!r}"
            )

    @property
    def init_scheme(self) -> str:
        """The initialisation ``init`` stands for: "auto" is the assignment's N(0, sig^2) for the vanilla
        RNN and orthogonal W with Xavier U and V for the gated cells, which N(0, 0.01^2) holds at the
        unigram loss for hundreds of updates (docs/quality.md)."""
        if self.init != "auto":
            return self.init
        return "assignment" if self.cell == "rnn" else "orthogonal"

    @classmethod
    def from_kwargs(cls, **kwargs) -> TrainConfig:
        """Build from keyword arguments, rejecting unknown names (with the known ones listed)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(
                f"unknown training parameter(s) {', '.join(unknown)}; "
                f"the parameters are {', '.join(sorted(known))}"
            )
        return cls(**kwargs)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def coerce(name: str, value, kind):
    """Return ``value`` as ``kind`` ("int", "float" or "str"), accepting numeric strings."""
    kind = getattr(kind, "__name__", kind)
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got the boolean {value!r}")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text) if kind == "int" and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise TypeError(f"{name} must be a number, got the text {value!r}") from None
    if not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if kind == "float":
        return float(value)
    if hasattr(value, "__index__"):  # int, numpy integer: kept exactly
        return int(value)
    if float(value) != int(float(value)):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    return int(float(value))


def positive(obj, *names: str) -> None:
    """Raise ValueError naming the first attribute that is not > 0."""
    for name in names:
        if not getattr(obj, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(obj, name)!r}")


def at_least(obj, low, *names: str) -> None:
    """Raise ValueError naming the first attribute that is below ``low``."""
    for name in names:
        if getattr(obj, name) < low:
            raise ValueError(f"{name} must be >= {low}, got {getattr(obj, name)!r}")
