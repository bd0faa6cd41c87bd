"""The model's parameters kept in one flat buffer with named views.

One layer (the assignment): U (G m, K), W (G m, m), V (K, m), b (G m,), c (K,), in that order.
L stacked layers append, for l = 2 .. L, the input weights U_l (G m, m) (the input of layer l is
h_t of layer l - 1), W_l (G m, m) and b_l (G m,), named ``U2 W2 b2 U3 ...``; V and c read the top
layer. Layer 1 keeps its plain names and its place at the front, so a one-layer ParamSet (and
checkpoint) is exactly the assignment's.

One flat buffer makes gradient clipping and the optimizers a handful of whole-array calls, and
lets parameters, gradients and the optimizer's state share one layout.
"""

from __future__ import annotations

import numpy as np

NAMES = ("U", "W", "V", "b", "c")
"""The parameter names of one layer, in the order of the flat layout."""


def layer_names(layers: int) -> tuple[str, ...]:
    """Every parameter name of an ``layers``-layer model, in flat order: U W V b c U2 W2 b2 ..."""
    return NAMES + tuple(f"{n}{l}" for l in range(2, layers + 1) for n in ("U", "W", "b"))


def count_layers(names) -> int:
    """The number of layers L whose parameters ``names`` holds (U2 ... UL present)."""
    L = 1
    while f"U{L + 1}" in names:
        L += 1
    return L


def param_shapes(m: int, K: int, gates: int = 1, layers: int = 1) -> dict[str, tuple[int, ...]]:
    """Shapes of the parameters for hidden size ``m``, vocabulary size ``K``, ``gates`` stacked
    blocks of U, W and b (1 for the vanilla RNN, 3 for the GRU, 4 for the LSTM) and ``layers`` layers."""
    G = gates * m
    shapes = {"U": (G, K), "W": (G, m), "V": (K, m), "b": (G,), "c": (K,)}
    for l in range(2, layers + 1):
        shapes.update({f"U{l}": (G, m), f"W{l}": (G, m), f"b{l}": (G,)})
    return shapes


class Layer:
    """The recurrent weights of one layer as views: U (G m, K or m), W (G m, m), b (G m,).

    ``m``, ``gates`` and ``flat`` (the whole buffer, for its dtype) as in the ParamSet, so a cell
    reads a layer exactly as it reads a one-layer ParamSet.
    """

    __slots__ = ("U", "W", "b", "m", "gates", "flat")

    def __init__(self, U, W, b, m: int, gates: int, flat):
        self.U, self.W, self.b, self.m, self.gates, self.flat = U, W, b, m, gates, flat


class ParamSet:
    """U (Gm,K), W (Gm,m), V (K,m), b (Gm,), c (K,) (and U_l, W_l, b_l of layers l >= 2) as views
    of one flat array ``flat``.

    Parameters
    ----------
    m, K : int
        Hidden size and vocabulary size.
    dtype : numpy dtype, optional
        float64 by default.
    flat : ndarray, optional
        An existing flat buffer to wrap (not copied); zeros when omitted.
    gates : int, optional
        G, the number of stacked blocks in U, W, b: 1 (vanilla RNN, default), 3 (GRU), 4 (LSTM).
    layers : int, optional
        L, the number of stacked recurrent layers (1, the assignment's, by default).
    """

    def __init__(
        self,
        m: int,
        K: int,
        dtype=np.float64,
        flat: np.ndarray | None = None,
        gates: int = 1,
        layers: int = 1,
    ):
        self.m, self.K, self.gates, self.layers = int(m), int(K), int(gates), int(layers)
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers!r}")
        self.shapes = param_shapes(self.m, self.K, self.gates, self.layers)
        self.names = tuple(self.shapes)
        size = sum(int(np.prod(s)) for s in self.shapes.values())
        self.flat = np.zeros(size, dtype=dtype) if flat is None else flat
        if self.flat.shape != (size,):
            raise ValueError(f"flat buffer has shape {self.flat.shape}, expected ({size},) for m={m}, K={K}")
        start = 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            setattr(self, name, self.flat[start : start + n].reshape(shape))
            start += n

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(f"unknown parameter {name!r}; the parameters are {', '.join(self.names)}")
        return getattr(self, name)

    def layer(self, l: int) -> Layer:
        """Layer ``l`` (1-based): its U, W, b as views."""
        if not 1 <= l <= self.layers:
            raise IndexError(f"layer {l} of a {self.layers}-layer model")
        s = "" if l == 1 else str(l)
        return Layer(self["U" + s], self["W" + s], self["b" + s], self.m, self.gates, self.flat)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The named views (no copies)."""
        return {name: self[name] for name in self.names}

    def _like(self, flat) -> ParamSet:
        return ParamSet(self.m, self.K, flat=flat, gates=self.gates, layers=self.layers)

    def copy(self) -> ParamSet:
        """An independent copy with its own flat buffer."""
        return self._like(self.flat.copy())

    def astype(self, dtype) -> ParamSet:
        """A copy in another floating dtype."""
        return self._like(self.flat.astype(dtype))

    def zeros_like(self) -> ParamSet:
        """A zero-filled ParamSet of the same layout and dtype (for gradients or optimizer state)."""
        return self._like(np.zeros_like(self.flat))

    @classmethod
    def from_arrays(cls, arrays: dict, dtype=np.float64) -> ParamSet:
        """Build from a mapping with keys U, W, V, b, c (and U2 W2 b2 ... for more layers), checking
        that the shapes agree."""
        layers = count_layers(arrays)
        missing = [n for n in layer_names(layers) if n not in arrays]
        if missing:
            raise KeyError(f"missing parameter array(s): {', '.join(missing)}")
        rows, m = np.shape(arrays["W"]) if np.ndim(arrays["W"]) == 2 else (0, 0)
        K = np.shape(arrays["U"])[1] if np.ndim(arrays["U"]) == 2 else 0
        gates = rows // m if m and rows % m == 0 else 1
        out = cls(m, K, dtype=dtype, gates=gates, layers=layers)
        for name, shape in out.shapes.items():
            got = np.shape(arrays[name])
            if got != shape:
                raise ValueError(f"parameter {name} has shape {got}, expected {shape} (m={m}, K={K})")
            out[name][...] = arrays[name]
        return out


INITS = ("assignment", "uniform", "orthogonal")
"""Initialisations of the weights U, W, V (the biases start at 0 in every one):

- ``assignment``: every weight ~ N(0, sig^2), the assignment's;
- ``uniform``: every weight ~ U(-1/sqrt(m), 1/sqrt(m)), PyTorch's default for nn.LSTM, nn.GRU, nn.Linear;
- ``orthogonal``: each gate block of W an orthogonal m x m matrix, U and V Xavier-uniform, U(-a, a)
  with a = sqrt(6 / (fan_in + fan_out)) per gate block (the LSTM and GRU literature's).
"""


def init_params(
    m: int,
    K: int,
    sig: float,
    rng: np.random.Generator,
    dtype=np.float64,
    gates: int = 1,
    layers: int = 1,
    init: str = "assignment",
) -> ParamSet:
    """The initial weights (``init``, one of :data:`INITS`; the assignment's U, W, V ~ N(0, sig^2) by
    default); b, c = 0.

    Draws U, then W, then V from ``rng`` (so a seed gives the same weights in every dtype), then
    U_l, W_l of each further layer. A cell may adjust the result (the LSTM's forget-gate bias):
    use ``cells.init_params``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    p = ParamSet(m, K, dtype=dtype, gates=gates, layers=layers)
    for name in ("U", "W", "V") + tuple(f"{n}{l}" for l in range(2, layers + 1) for n in "UW"):
        shape = p.shapes[name]
        if init == "assignment":
            p[name][...] = rng.standard_normal(shape) * sig
        elif init == "uniform":
            p[name][...] = rng.uniform(-1.0, 1.0, shape) / np.sqrt(m)
        elif name[0] == "W":  # orthogonal, gate block by gate block
            for k in range(gates):
                q, r = np.linalg.qr(rng.standard_normal((m, m)))
                p[name][k * m : (k + 1) * m] = q * np.sign(np.diag(r))
        else:  # Xavier-uniform; U's rows are G blocks of m outputs each
            fan_out, fan_in = (m, shape[1]) if name[0] == "U" else shape
            p[name][...] = rng.uniform(-1.0, 1.0, shape) * np.sqrt(6.0 / (fan_in + fan_out))
    return p
