"""The cost benchmark of the study: one module per published section (run with benchmarks/run.py)."""
