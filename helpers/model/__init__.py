"""The model layer: parameters (``params``), the cell interface (``base``) and the cells
(``rnn``, ``lstm``, ``gru``) in one registry (``cells``), the per-step oracles (``oracles``), the
gradient check (``gradcheck``), sampling (``sample``) and the optional numba engine
(``fast``, ``fast_kernels``). Imports numpy only, never the layers above.
"""
