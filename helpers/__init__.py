"""A character-level RNN in numpy, trained with AdaGrad, and the pieces of its report.

Modules by role:

- text: ``data`` (loading, vocabulary, encoding), ``collection`` (collections of short documents)
- model: ``params`` (U, W, V, b, c in one flat buffer), ``rnn`` (vanilla RNN forward + BPTT,
  vectorized), ``cells`` (RNN and LSTM on mini-batches), ``reference`` (per-step oracles),
  ``fast`` + ``fast_kernels`` (optional numba path), ``gradcheck``
- training: ``config``, ``optim`` (clipping, AdaGrad, RMSProp, Adam), ``train`` (the loop, smooth
  loss, streams, validation), ``evaluate``, ``checkpoint``, ``progress``, ``documents``
- output: ``synth`` (sampling), ``interactive`` (ipywidgets sampler), ``plots``, ``report``
- running: ``workflow`` (one function per notebook), ``pipeline`` (``make report``), ``compare``
  (``make compare``), ``sweep`` (``make sweep``, Dask), ``paths``
"""
