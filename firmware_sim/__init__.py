"""Simulated devices that speak the real protocols over real transports, with ground truth."""
