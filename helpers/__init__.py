"""A character-level RNN in numpy, trained with AdaGrad, and the pieces of its report.

The sub-packages are layers; imports point down only (checked by import-linter in ``make test``):

    runs      one function per notebook step, the pipeline, comparison, documents, Dask sweeps
    report    HTML toolkit, figures, sections, rendering    |  train   config, optimizers, engines,
              (reads result files only)                     |          trainer, checkpoints
    model     parameters, cells, oracles, gradient check,   |  data    the text, document collections
              sampling, numba engine                        |
    common    paths, atomic result files, progress display, units

``report`` and ``train`` never import each other; ``model`` and ``data`` neither.
"""
