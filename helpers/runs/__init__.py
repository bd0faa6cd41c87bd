"""The runs layer: what a notebook calls inside its kernel. One function per notebook step
(``steps``: gradient test, train, synthesize; ``documents``), the looks inside a trained model that
01, 03 and 04 show (``explore``, ``decoding``) and the interactive sampler (``interactive``).
Imports every layer below; the jobs that run notebooks are :mod:`helpers.jobs`.
"""
