"""A character-level RNN in numpy, trained with AdaGrad, and the pieces of its report.

The sub-packages are layers; imports point down only (checked by import-linter in ``make test``):

    jobs      what runs notebooks: papermill, make report, the comparison, Dask sweeps
    runs      one function per notebook step: train, synthesize, look inside, documents, sampler
    report    HTML toolkit, figures, sections, rendering    |  train   config, optimizers, engines,
              (reads result files only)                     |          trainer, checkpoints
    model     parameters, cells, oracles, gradient check,   |  data    the text, document collections
              sampling, numba engine                        |
    common    paths, atomic result files, the folder lock, progress display, units, errors

``report`` and ``train`` never import each other; ``model`` and ``data`` neither.

In a notebook, ``%load_ext helpers`` (the first line of every notebook here) makes the errors this
package raises on purpose show as their one-line message (:mod:`helpers.common.errors`).
"""


def load_ipython_extension(ipython) -> None:
    """``%load_ext helpers``: errors raised on purpose show as one line in this IPython kernel."""
    from .common import errors

    errors.install(ipython)
