"""The model's parameters U, W, V, b, c kept in one flat buffer with named views.

One flat buffer makes gradient clipping and AdaGrad a handful of whole-array calls, and lets
parameters, gradients and the optimizer's state share one layout.
"""
from __future__ import annotations

import numpy as np

NAMES = ("U", "W", "V", "b", "c")
"""The parameter names, in the order of the flat layout."""


def param_shapes(m: int, K: int, gates: int = 1) -> dict[str, tuple[int, ...]]:
    """Shapes of the parameters for hidden size ``m``, vocabulary size ``K`` and ``gates`` stacked
    blocks of U, W and b (1 for the vanilla RNN, 4 for the LSTM)."""
    G = gates * m
    return {"U": (G, K), "W": (G, m), "V": (K, m), "b": (G,), "c": (K,)}


class ParamSet:
    """U (Gm,K), W (Gm,m), V (K,m), b (Gm,), c (K,) as views of one flat array ``flat``.

    Parameters
    ----------
    m, K : int
        Hidden size and vocabulary size.
    dtype : numpy dtype, optional
        float64 by default.
    flat : ndarray, optional
        An existing flat buffer to wrap (not copied); zeros when omitted.
    gates : int, optional
        G, the number of stacked blocks in U, W, b: 1 (vanilla RNN, default), 4 (LSTM), ...
    """

    def __init__(self, m: int, K: int, dtype=np.float64, flat: np.ndarray | None = None, gates: int = 1):
        self.m, self.K, self.gates = int(m), int(K), int(gates)
        self.shapes = param_shapes(self.m, self.K, self.gates)
        size = sum(int(np.prod(s)) for s in self.shapes.values())
        self.flat = np.zeros(size, dtype=dtype) if flat is None else flat
        if self.flat.shape != (size,):
            raise ValueError(f"flat buffer has shape {self.flat.shape}, expected ({size},) for m={m}, K={K}")
        start = 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            setattr(self, name, self.flat[start:start + n].reshape(shape))
            start += n

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in NAMES:
            raise KeyError(f"unknown parameter {name!r}; the parameters are {', '.join(NAMES)}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The named views (no copies)."""
        return {name: self[name] for name in NAMES}

    def copy(self) -> "ParamSet":
        """An independent copy with its own flat buffer."""
        return ParamSet(self.m, self.K, flat=self.flat.copy(), gates=self.gates)

    def astype(self, dtype) -> "ParamSet":
        """A copy in another floating dtype."""
        return ParamSet(self.m, self.K, flat=self.flat.astype(dtype), gates=self.gates)

    def zeros_like(self) -> "ParamSet":
        """A zero-filled ParamSet of the same layout and dtype (for gradients or optimizer state)."""
        return ParamSet(self.m, self.K, dtype=self.flat.dtype, gates=self.gates)

    @classmethod
    def from_arrays(cls, arrays: dict, dtype=np.float64) -> "ParamSet":
        """Build from a mapping with keys U, W, V, b, c, checking that the shapes agree."""
        missing = [n for n in NAMES if n not in arrays]
        if missing:
            raise KeyError(f"missing parameter array(s): {', '.join(missing)}")
        rows, m = np.shape(arrays["W"]) if np.ndim(arrays["W"]) == 2 else (0, 0)
        K = np.shape(arrays["U"])[1] if np.ndim(arrays["U"]) == 2 else 0
        gates = rows // m if m and rows % m == 0 else 1
        out = cls(m, K, dtype=dtype, gates=gates)
        for name, shape in out.shapes.items():
            got = np.shape(arrays[name])
            if got != shape:
                raise ValueError(f"parameter {name} has shape {got}, expected {shape} (m={m}, K={K})")
            out[name][...] = arrays[name]
        return out


def init_params(m: int, K: int, sig: float, rng: np.random.Generator, dtype=np.float64, gates: int = 1) -> ParamSet:
    """The assignment's initialisation: U, W, V ~ N(0, sig^2); b, c = 0.

    Draws U, then W, then V from ``rng`` (so a seed gives the same weights in every dtype).
    A cell may adjust the result (the LSTM's forget-gate bias): use ``cells.init_params``.
    """
    p = ParamSet(m, K, dtype=dtype, gates=gates)
    for name in ("U", "W", "V"):
        p[name][...] = rng.standard_normal(p.shapes[name]) * sig
    return p
