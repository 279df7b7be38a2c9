"""Harnesses that time and compare training; run from the repository root (``python -m benchmarks.bench``)."""
