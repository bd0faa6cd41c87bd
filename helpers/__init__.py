"""A vanilla character-level RNN in numpy, trained with AdaGrad, and the pieces of its report.

Modules by role: ``data`` (text, vocabulary, encoding), ``params`` (U, W, V, b, c in one flat
buffer), ``rnn`` (forward and BPTT, vectorized), ``reference`` (the per-step oracle),
``gradcheck``, ``optim`` (clipping, AdaGrad), ``train`` (the loop, smooth loss), ``synth``
(sampling), ``checkpoint``, ``plots``, ``report``, ``workflow`` (one function per notebook) and
``pipeline`` (``make report``).
"""
