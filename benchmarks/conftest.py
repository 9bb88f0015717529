"""Benchmark harness: after the run, print each group's medians as ratios to its baseline.

A benchmark marks itself as its group's baseline with ``benchmark.extra_info["baseline"] = True``
(e.g. the plain convolution, or the reference implementation); every other benchmark of the group
is then reported as a multiple of it, measured in the same run on the same machine.
"""

from __future__ import annotations

import pathlib
import sys
from collections import defaultdict

sys.path.insert(0, str(pathlib.Path(__file__).parent))

ROLLUPS: list[str] = []  # extra tables that benchmarks append (e.g. peak memory)


def cuda_peak_mib(step) -> float:
    """Peak CUDA memory (MiB) one call of ``step()`` allocates above what is allocated before it
    (inputs, weights)."""
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return round((torch.cuda.max_memory_allocated() - before) / 2**20, 1)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    benches = getattr(session, "benchmarks", None) or []
    groups = defaultdict(list)
    for bench in benches:
        if getattr(bench.stats, "data", None):  # skipped or failed benchmarks have no timings
            groups[bench.group].append(bench)
    write = terminalreporter.write_line
    if groups:
        write("")
        write("Ratios to each group's baseline (median times, same run):")
    for group, items in sorted(groups.items(), key=lambda kv: str(kv[0])):
        base = [b for b in items if b.extra_info.get("baseline")]
        if not base:
            continue
        base_median = base[0].stats.median
        write(f"  {group}:")
        for b in sorted(items, key=lambda b: b.stats.median):
            label = b.extra_info.get("impl", b.name)
            write(f"    {label:<22s} {b.stats.median * 1e3:9.2f} ms   {b.stats.median / base_median:6.2f}x")
    for table in ROLLUPS:
        write("")
        for line in table.splitlines():
            write(line)
