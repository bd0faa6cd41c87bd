"""The bottom layer: paths, atomic result files and progress display, used by every other layer."""
