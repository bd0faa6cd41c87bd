"""The runs layer: one function per notebook step (``steps``, ``documents``), running notebooks
with papermill (``notebooks``), ``make report`` (``pipeline``), ``make compare`` (``compare``),
``make sweep`` on Dask (``sweep``) and the interactive sampler (``interactive``). The top layer:
it may import every other one.
"""
