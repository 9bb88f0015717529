"""One inference at a time per device, off the event loop, behind a bounded queue.

An inpainting call holds the device (and, on the CPU, every free core: see
:mod:`fastinpaint._cpu_load`) for its whole duration, so running two at once only makes both slower
and doubles the memory. The queue therefore runs jobs one after the other on a single worker
thread; the event loop stays free to accept and answer other requests meanwhile. A request is
admitted (counted) before its images are decoded, and requests beyond ``max_waiting`` jobs waiting
are refused at once (:class:`QueueFull`, answered 503): at most ``max_waiting + 1`` decoded images
are held at any time, however many clients send.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """The queue holds ``max_waiting`` jobs already."""


class JobQueue:
    """Runs callables one at a time on a worker thread of its own, FIFO.

    ``await queue.run(fn)`` returns ``fn()``'s result (or raises its exception) once it has run;
    it raises :class:`QueueFull` immediately when ``max_waiting`` jobs are already waiting behind
    the running one. ``await queue.run(fn, prepare)``: once admitted, ``prepare()`` runs on a thread
    of its own (decoding, while the worker computes another job), then ``fn(prepare())`` on the
    worker; an exception from ``prepare`` is raised and frees the place.
    """

    def __init__(self, max_waiting: int = 8, name: str = "fastinpaint-inference"):
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self.max_waiting = max_waiting
        # One worker thread: its executor's own FIFO queue is the job queue.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self.completed = 0

    @property
    def pending(self) -> int:
        """Jobs admitted and not finished: the running one plus those waiting."""
        return self._admitted

    async def run(self, fn: Callable[..., T], prepare: Optional[Callable[[], Any]] = None) -> T:
        with self._lock:
            if self._admitted >= self.max_waiting + 1:
                raise QueueFull(f"the server is busy: {self._admitted - 1} jobs are already waiting "
                                f"(limit {self.max_waiting}); try again shortly")
            self._admitted += 1
        submitted = False
        try:
            if prepare is None:
                future = self._executor.submit(fn)
            else:
                prepared = await asyncio.to_thread(prepare)
                future = self._executor.submit(fn, prepared)
            submitted = True
        finally:
            if not submitted:  # prepare failed (or the request was cancelled meanwhile)
                self._release()
        future.add_done_callback(lambda _f: self._release())
        # shield: a client that disconnects cancels its request's task, but the job, once
        # submitted, runs to its end (a thread cannot be interrupted), and stays counted until then.
        return await asyncio.shield(asyncio.wrap_future(future))

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1
            self.completed += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
