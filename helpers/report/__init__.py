"""The report layer: an HTML toolkit (``html``), figures (``figures``), the sections of the report
(``sections``) and of the extras (``compare_section``, ``documents_section``,
``sweep_section``), rendering to HTML
(``render``) and PDF (``pdf``). Reads result files only (through :mod:`helpers.common.files`), never the
trainer or the model.
"""
