"""Gradient clipping and the optimizers (AdaGrad, RMSProp, Adam), on flat arrays, in place.

Every constant an optimizer uses is in ``SETTINGS``, which run.json records and the report reads.
"""

from __future__ import annotations

import numpy as np

CLIP = 5.0
"""Gradients are clipped elementwise to [-CLIP, CLIP]."""
EPS = 1e-8
"""AdaGrad's epsilon."""


def clip_(grad: np.ndarray, limit: float = CLIP) -> np.ndarray:
    """Clip every gradient entry to [-limit, limit], in place; returns ``grad``."""
    return np.clip(grad, -limit, limit, out=grad)


def clip_norm_(grad: np.ndarray, limit: float) -> np.ndarray:
    """Scale ``grad`` in place to an L2 norm of at most ``limit`` (PyTorch's clip_grad_norm_ over all
    parameters at once); returns ``grad``."""
    norm = float(np.sqrt(np.dot(grad, grad)))
    if norm > limit:
        grad *= limit / (norm + 1e-6)
    return grad


def decay_(theta: np.ndarray, rate: float, mask: np.ndarray) -> None:
    """Decoupled weight decay (AdamW's), in place: theta <- theta - rate * mask * theta, with ``mask``
    1 on the weights and 0 on the biases."""
    theta -= rate * mask * theta


def adagrad_(
    theta: np.ndarray,
    grad: np.ndarray,
    mem: np.ndarray,
    eta: float,
    eps: float = EPS,
    tmp: np.ndarray | None = None,
) -> None:
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


# Optimizers with one signature: step(theta, grad, slots, eta, t, tmp), all arrays flat and updated
# in place; ``slots`` holds the optimizer's state arrays (SLOTS[name] of them), t is the 1-based
# update count and ``tmp`` a scratch array.


def adagrad(theta, grad, slots, eta, t, tmp) -> None:
    """AdaGrad, the assignment's optimizer: m += g^2; theta -= eta g / sqrt(m + eps)."""
    adagrad_(theta, grad, slots[0], eta, tmp=tmp)


RHO = 0.9
"""RMSProp's decay of the mean square."""
BETA1, BETA2 = 0.9, 0.999
"""Adam's decays of the first and second moments."""


def rmsprop(theta, grad, slots, eta, t, tmp, rho: float = RHO) -> None:
    """RMSProp: m = rho m + (1 - rho) g^2; theta -= eta g / sqrt(m + eps)."""
    ms = slots[0]
    np.multiply(grad, grad, out=tmp)
    ms *= rho
    tmp *= 1.0 - rho
    ms += tmp
    np.add(ms, EPS, out=tmp)
    np.sqrt(tmp, out=tmp)
    np.divide(grad, tmp, out=tmp)
    tmp *= eta
    theta -= tmp


def adam(theta, grad, slots, eta, t, tmp, beta1: float = BETA1, beta2: float = BETA2) -> None:
    """Adam: first and second moments with bias correction; theta -= eta m_hat / (sqrt(v_hat) + eps)."""
    m1, m2 = slots
    m1 *= beta1
    m1 += (1.0 - beta1) * grad
    np.multiply(grad, grad, out=tmp)
    m2 *= beta2
    tmp *= 1.0 - beta2
    m2 += tmp
    np.divide(m2, 1.0 - beta2**t, out=tmp)  # v_hat
    np.sqrt(tmp, out=tmp)
    tmp += EPS
    np.divide(m1, tmp, out=tmp)
    tmp *= eta / (1.0 - beta1**t)  # m_hat / (sqrt(v_hat) + eps), times eta
    theta -= tmp


OPTIMIZERS = {"adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}
"""Optimizer name -> step function (one signature)."""
SLOTS = {"adagrad": 1, "rmsprop": 1, "adam": 2}
"""Optimizer name -> number of state arrays."""
SETTINGS = {
    "adagrad": {"eps": EPS},
    "rmsprop": {"rho": RHO, "eps": EPS},
    "adam": {"beta1": BETA1, "beta2": BETA2, "eps": EPS},
}
"""Optimizer name -> the constants its step uses (besides eta)."""
