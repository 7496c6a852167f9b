"""Benchmarks: each prints its figures beside a baseline measured in the same run."""

from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike getrusage's, which keeps the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def nilm_data() -> Path:
    """The shared data's ``nilm`` folder (``$OHMNI_DATA`` or ../shared/data), or an exit that says where it was
    looked for: without it a NILM bench has nothing to measure, and a converter's traceback would not say so."""
    from tests.conftest import shared_data

    path = shared_data() / "nilm"
    if not path.is_dir():
        raise SystemExit(f"no NILM data at {path}: set OHMNI_DATA to the shared data folder (the one holding nilm/)")
    return path
