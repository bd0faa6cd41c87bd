"""The jobs layer: what runs notebooks rather than runs inside them. The one papermill call and the
notebooks' committed form (``notebooks``), ``make report`` (``pipeline``), ``make compare``
(``compare``) and ``make sweep`` on Dask (``sweep``). The top layer: it may import every other one.
"""
