"""Benchmarks: the evidence for design choices, run by hand (`.venv/bin/python benchmarks/X.py`)."""
