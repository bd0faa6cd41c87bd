"""The runs layer: one function per notebook step (``steps``, ``documents``), running notebooks
with papermill (``notebooks``), ``make report`` (``pipeline``), ``make compare`` (``compare``),
``make sweep`` on Dask (``sweep``), the interactive sampler (``interactive``) and the looks inside
a trained model that 03 and 04 show (``explore``). The top layer: it may import every other one.

Imported in a Jupyter kernel, it makes the errors the package raises on purpose show as their
message, without a traceback (:mod:`helpers.common.errors`).
"""
from ..common import errors as _errors

_errors.install()
