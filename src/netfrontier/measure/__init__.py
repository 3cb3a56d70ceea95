"""Measure real latency on the CPU and GPU at hand, calibrate device profiles, validate them."""
