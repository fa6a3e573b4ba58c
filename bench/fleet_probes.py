"""What the fleet bench reads while it runs: CPU from /proc, the collectors' /metrics.

CPU seconds come from ``/proc/<pid>/stat`` (user + system) and ``/proc/stat`` (the
whole machine, neighbours included); the lag quantiles are interpolated inside the
histogram buckets the way PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

__all__ = ["cpu_s", "lag_quantile", "machine_busy_s", "metric", "postgres_pids", "received"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, neighbours included."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / _CLOCK_TICKS, sum(fields) / _CLOCK_TICKS


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def metric(port: int, name: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def received(port: int) -> float:
    try:
        return sum(metric(port, "linewatch_collector_received_total").values())
    except OSError:
        return 0.0  # the metrics endpoint is not up yet


def lag_quantile(ports: list[int], quantile: float) -> float:
    buckets: dict[float, float] = {}
    for port in ports:
        for key, value in metric(port, "linewatch_collector_lag_seconds_bucket").items():
            bound = key.split('le="')[1].split('"')[0]
            upper = float("inf") if bound == "+Inf" else float(bound)
            buckets[upper] = buckets.get(upper, 0.0) + value
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total == 0:
        return float("nan")
    rank, lower, below = quantile * total, 0.0, 0.0
    for upper in bounds:  # linear inside the bucket, as histogram_quantile does
        if buckets[upper] >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(buckets[upper] - below, 1e-9)
        lower, below = upper, buckets[upper]
    return lower
