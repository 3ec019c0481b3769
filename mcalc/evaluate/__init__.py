"""Evaluation: metrics with patient-level intervals, the classical baselines, the run records, the analysis
plan fixed before the data and the verdicts it gives, and two runs compared."""
