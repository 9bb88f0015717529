"""How many intra-op threads a CPU method should use right now, given what else the machine runs.

Why: a pass split over T threads ends at a barrier, and a thread the OS has descheduled for
another process holds every other thread there. PyTorch's own element-wise ops split each pass
statically, one share per thread, and its OpenMP workers spin while they wait; with one other
CPU-bound process on a 2-core machine, a PatchMatch inpainting on 2 threads took 1.4-8x the time
it took on 1 (measured; our own kernels take small chunks dynamically, which helps them, not
torch's ops). So the CPU methods count the cores that other processes keep busy and run on the
rest: all of torch's threads on an idle machine, fewer on a busy one.

Linux only (``/proc``); elsewhere the thread count is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

import torch

__all__ = ["free_cpu_threads", "intra_op_threads", "on_free_cpu_threads"]

# The outermost intra_op_threads block's state: torch's setting is process-wide.
_lock = threading.Lock()
_depth = 0
_restore_to = 0


def _own_running_threads() -> int:
    """Threads of this process in state R (running or runnable), this one included."""
    n = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # the state follows the command name, which is in parentheses and may hold spaces
            if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"R":
                n += 1
    except OSError:
        return 1
    return max(n, 1)


def free_cpu_threads(wanted: int | None = None) -> int:
    """The number of intra-op threads worth using now: ``wanted`` (default: torch's intra-op
    thread count as it was before the outermost :func:`intra_op_threads` block, if one is
    running, else as it is), less the CPUs of this process's affinity set that other processes
    are running on at this moment (``/proc/loadavg``'s runnable count minus this process's
    runnable threads); at least 1. Returns ``wanted`` where ``/proc`` is not available."""
    if wanted is None:
        with _lock:
            wanted = _restore_to if _depth > 0 else torch.get_num_threads()
    wanted = int(wanted)
    if wanted <= 1:
        return max(wanted, 1)
    try:
        with open("/proc/loadavg", "rb") as f:
            runnable = int(f.read().split()[3].split(b"/")[0])
        cpus = len(os.sched_getaffinity(0))
    except (OSError, ValueError, IndexError, AttributeError):
        return wanted
    others = max(runnable - _own_running_threads(), 0)
    return max(1, min(wanted, cpus - others))


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Runs the block with torch's intra-op thread count set to ``n`` (process-wide, as torch's
    setting is), restoring the count seen on entry when the outermost such block exits."""
    global _depth, _restore_to
    with _lock:
        if _depth == 0:
            _restore_to = torch.get_num_threads()
        _depth += 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and torch.get_num_threads() != _restore_to:
                torch.set_num_threads(_restore_to)


def on_free_cpu_threads(device) -> contextlib.AbstractContextManager:
    """``intra_op_threads(free_cpu_threads())`` for work on the CPU; nothing for other devices."""
    if torch.device(device).type != "cpu":
        return contextlib.nullcontext()
    return intra_op_threads(free_cpu_threads())
