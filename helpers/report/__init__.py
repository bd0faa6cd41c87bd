"""The report layer: an HTML toolkit (``html``), figures (``figures``), the sections of the report
(``sections``) and of the extras (``compare``, ``documents``, ``sweep``), and rendering to HTML
and PDF (``render``). Reads result files only (through :mod:`helpers.common.files`), never the
trainer or the model.
"""
