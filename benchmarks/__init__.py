"""Speed measurements of the training step and of synthesis: ``python -m benchmarks.bench``."""
