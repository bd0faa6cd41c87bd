"""Gradient clipping and the AdaGrad update, on flat arrays, in place."""
from __future__ import annotations

import numpy as np

CLIP = 5.0
"""Gradients are clipped elementwise to [-CLIP, CLIP]."""
EPS = 1e-8
"""AdaGrad's epsilon."""


def clip_(grad: np.ndarray, limit: float = CLIP) -> np.ndarray:
    """Clip every gradient entry to [-limit, limit], in place; returns ``grad``."""
    return np.clip(grad, -limit, limit, out=grad)


def adagrad_(theta: np.ndarray, grad: np.ndarray, mem: np.ndarray, eta: float, eps: float = EPS,
             tmp: np.ndarray | None = None) -> None:
    """One AdaGrad step, in place on flat arrays of one shape.

    m <- m + g^2;  theta <- theta - eta * g / sqrt(m + eps)

    ``tmp`` is an optional scratch array of the same shape (avoids allocating per step).
    """
    if tmp is None:
        tmp = np.empty_like(theta)
    np.multiply(grad, grad, out=tmp)
    mem += tmp  # m_t = m_{t-1} + g_t^2
    np.add(mem, eps, out=tmp)
    np.sqrt(tmp, out=tmp)
    np.divide(grad, tmp, out=tmp)  # g_t / sqrt(m_t + eps)
    tmp *= eta
    theta -= tmp
