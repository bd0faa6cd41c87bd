"""The cell registry: every recurrent cell by name, and the calls the rest of the package makes.

    cells.get("lstm").forward(p, X, Y, state, ws)       or    cells.forward("lstm", p, X, Y, state, ws)

A new cell is a subclass of :class:`helpers.model.base.Cell` in its own module (forward and
backward side by side), one line in ``REGISTRY`` and a per-step oracle in
:mod:`helpers.model.oracles`; nothing else in the package names a cell.
"""

from __future__ import annotations

import numpy as np

from .base import Cell, dropout_masks  # noqa: F401 (dropout_masks: for the trainer)
from .gru import GRU
from .lstm import LSTM
from .params import INITS, ParamSet  # noqa: F401 (INITS: for the trainer's settings)
from .rnn import RNN

REGISTRY: dict[str, Cell] = {cell.name: cell for cell in (RNN(), LSTM(), GRU())}
"""Cell name -> the cell."""
CELLS = {name: cell.gates for name, cell in REGISTRY.items()}
"""Cell name -> number of gate blocks G."""
STATE_SIZES = {name: cell.state_size for name, cell in REGISTRY.items()}
"""Cell name -> number of m-sized state vectors S."""


def get(name: str) -> Cell:
    """The cell called ``name``, or a ValueError listing the cells."""
    if name not in REGISTRY:
        raise ValueError(f"cell must be one of {', '.join(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def of(p: ParamSet) -> str:
    """The name of the cell a parameter set belongs to, from its number of gate blocks."""
    names = [name for name, cell in REGISTRY.items() if cell.gates == p.gates]
    if len(names) != 1:
        raise ValueError(
            f"parameters with {p.gates} gate block(s) belong to no single cell of "
            f"{', '.join(f'{n} ({c.gates})' for n, c in REGISTRY.items())}"
        )
    return names[0]


def init_params(
    cell: str,
    m: int,
    K: int,
    sig: float,
    rng: np.random.Generator,
    dtype=np.float64,
    layers: int = 1,
    init: str = "assignment",
) -> ParamSet:
    """The initial parameters of ``cell`` with ``layers`` layers (see :meth:`Cell.init_params`)."""
    return get(cell).init_params(m, K, sig, rng, dtype, layers, init)


def initial_state(cell: str, p: ParamSet, B: int = 1) -> np.ndarray:
    """The zero state of B streams for the model ``p``, (B, L S m)."""
    return get(cell).initial_state(p.m, B, p.flat.dtype, p.layers)


def forward(cell: str, p: ParamSet, X, Y, state, ws=None, masks=None):
    """``get(cell).forward``: (mean loss over the B streams, cache)."""
    return get(cell).forward(p, X, Y, state, ws, masks)


def loss_and_grads(cell: str, p: ParamSet, X, Y, state, grads: ParamSet, ws=None, masks=None):
    """Forward and backward over a mini-batch; returns (mean loss, state after the last step)."""
    c = get(cell)
    loss, cache = c.forward(p, X, Y, state, ws, masks)
    c.backward(p, cache, grads)
    return loss, cache["state"]
