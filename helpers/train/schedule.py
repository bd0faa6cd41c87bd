"""The learning rate of each update: eta, decayed per epoch (char-rnn style), with an optional
linear warm-up and cosine schedule. The defaults (lr_decay 1, constant, no warm-up) give eta itself.

    eta_t = eta * lr_decay^(epoch - 1) * min(1, t / warmup) * (1 + cos(pi (t - 1) / n_updates)) / 2
                                        (only with warmup > 0)  (only with lr_schedule "cosine")

With a ``time_budget`` the cosine runs over the seconds instead: (t - 1) / n_updates becomes the
fraction of the budget spent, so the rate reaches 0 as the time runs out, whatever the machine's speed.
"""

from __future__ import annotations

import math

from .config import TrainConfig


def learning_rate(cfg: TrainConfig, t: int, epoch: int, seconds: float = 0.0) -> float:
    """eta for update number ``t`` (1-based) taken in epoch ``epoch`` (1-based).

    Parameters
    ----------
    cfg : TrainConfig
        eta, lr_decay, warmup, lr_schedule and n_updates (the cosine's length).
    t : int
        The update about to be taken, 1 for the first.
    epoch : int
        The epoch it belongs to; each new epoch multiplies eta by lr_decay once more.
    seconds : float
        The training time spent so far, which a cosine schedule with ``time_budget`` runs over.
    """
    eta = cfg.eta
    if cfg.lr_decay != 1.0:
        eta *= cfg.lr_decay ** (epoch - 1)  # char-rnn: decay at every new epoch
    if cfg.warmup and t < cfg.warmup:
        eta *= t / cfg.warmup  # linear warm-up
    if cfg.lr_schedule == "cosine":
        done = (
            min(seconds / cfg.time_budget, 1.0)
            if cfg.time_budget
            else min(t - 1, cfg.n_updates) / cfg.n_updates
        )
        eta *= 0.5 * (1.0 + math.cos(math.pi * done))
    return eta
