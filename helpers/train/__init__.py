"""The training layer: configuration (``config``), optimizers (``optim``), engines (``engine``),
the update loop (``trainer``) and the session around it (``session``: progress, checkpoints'
cadence, Ctrl-C), evaluation (``evaluate``), checkpoints (``checkpoint``) and the documents
trainer (``document_trainer``). Imports the model and data layers, never the report or the runs.
"""
