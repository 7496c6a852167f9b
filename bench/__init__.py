"""Benchmarks: each prints its figures beside a baseline measured in the same run."""

from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike getrusage's, which keeps the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
