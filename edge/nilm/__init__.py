"""Disaggregation on the hub (NumPy/SciPy only): data, converters and metrics so far.

The disaggregator itself is the next step (issue 4); this package already reads and
checks house CSVs, converts REFIT and REDD into them, and scores estimates the way the
issue states it.
"""
