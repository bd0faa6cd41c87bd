"""The bottom layer: paths, atomic result files, the one-training-per-folder lock, progress display,
units and short errors in notebooks; used by every other layer."""
