"""Evaluation in LIBERO with the published protocol: policies, episodes, results files and reports."""
