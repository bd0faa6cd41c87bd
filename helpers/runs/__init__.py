"""The runs layer: one function per notebook step (``steps``, ``documents``), running notebooks
with papermill (``notebooks``), ``make report`` (``pipeline``), ``make compare`` (``compare``),
``make sweep`` on Dask (``sweep``), the interactive sampler (``interactive``) and the looks inside
a trained model that 03 and 04 show (``explore``). The top layer: it may import every other one.
"""
