"""Fault harnesses: kill trainings, Dask workers and schedulers on purpose and count what survived
(``make faults``, ``python -m faults``); the tests inject a few of each through the same code."""
