"""Metrics, the cost model, the shared evaluator and the comparison of runs."""
