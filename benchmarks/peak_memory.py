"""The peak memory of a benchmark's process, for the benchmarks' tables."""


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM) in MB. Not ``ru_maxrss``: Linux keeps that across
    ``fork`` and ``exec``, so a child of a parent that once held more (e.g. one that generated
    a big scene) reports the parent's peak."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
