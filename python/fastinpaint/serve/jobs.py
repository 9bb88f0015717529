"""One inference at a time per device, off the event loop, behind a bounded queue.

An inpainting call holds the device (and, on the CPU, every free core: see
:mod:`fastinpaint._cpu_load`) for its whole duration, so running two at once only makes both slower
and doubles the memory. The queue therefore runs jobs one after the other on a single worker
thread; the event loop stays free to accept and answer other requests meanwhile. A request is
admitted (counted) before its images are decoded, and requests beyond ``max_waiting`` jobs waiting
are refused at once (:class:`QueueFull`, answered 503): at most ``max_waiting + 1`` decoded images
are held at any time, however many clients send.

:meth:`JobQueue.stop` (a second Ctrl-C) ends every request at once with :class:`ShuttingDown`
(answered 503): the waiting jobs never run, and the running one, which a thread cannot interrupt,
has its result dropped (:attr:`JobQueue.stopping` tells it not to save anything).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """The queue holds ``max_waiting`` jobs already."""


#: What a request cancelled by :meth:`JobQueue.stop` is told.
SHUTTING_DOWN = "the server is shutting down; the job was cancelled"


class ShuttingDown(Exception):
    """The queue was stopped (:meth:`JobQueue.stop`) before this job's result was answered."""


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
        self._running = 0  # 1 while the worker runs a job
        self.completed = 0
        #: set by :meth:`stop`: a job still running must not save or publish anything
        self.stopping = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiters: "set[asyncio.Future]" = set()  # the answers not given yet

    @property
    def pending(self) -> int:
        """Jobs admitted and not finished: the running one plus those waiting."""
        return self._admitted

    @property
    def running(self) -> int:
        """1 while a job runs on the worker, else 0."""
        return self._running

    @property
    def waiting(self) -> int:
        """Jobs admitted and not started (being decoded, or queued behind the running one)."""
        with self._lock:
            return self._admitted - self._running

    async def run(self, fn: Callable[..., T], prepare: Optional[Callable[[], Any]] = None) -> T:
        loop = asyncio.get_running_loop()
        self._loop = loop
        with self._lock:
            if self.stopping:
                raise ShuttingDown(SHUTTING_DOWN)
            if self._admitted >= self.max_waiting + 1:
                waiting = self._admitted - 1
                raise QueueFull(f"the server is busy: {waiting} {'job is' if waiting == 1 else 'jobs are'} "
                                f"already waiting (limit {self.max_waiting}); try again shortly")
            self._admitted += 1
        # answered by the job, or by stop() first; an answer nobody awaits (client gone) is not logged
        waiter = loop.create_future()
        waiter.add_done_callback(lambda w: w.cancelled() or w.exception())
        self._waiters.add(waiter)
        submitted = False
        try:
            prepared = () if prepare is None else (await asyncio.to_thread(prepare),)
            if self.stopping:
                raise ShuttingDown(SHUTTING_DOWN)
            future = self._executor.submit(self._call, fn, *prepared)
            submitted = True
        finally:
            if not submitted:  # prepare failed, the queue stopped, or the request was cancelled meanwhile
                self._waiters.discard(waiter)
                self._release()

        def done(f: concurrent.futures.Future) -> None:  # on the worker thread (or stop()'s)
            self._release()
            try:
                loop.call_soon_threadsafe(self._answer, waiter, f)
            except RuntimeError:  # the loop is closed: nobody to answer
                pass

        future.add_done_callback(done)
        # shield: a client that disconnects cancels its request's task, but the job, once
        # submitted, runs to its end (a thread cannot be interrupted), and stays counted until then.
        try:
            return await asyncio.shield(waiter)
        finally:
            self._waiters.discard(waiter)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._running = 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running = 0

    @staticmethod
    def _answer(waiter: asyncio.Future, f: concurrent.futures.Future) -> None:
        if waiter.done():  # stop() answered first
            return
        if f.cancelled():
            waiter.set_exception(ShuttingDown(SHUTTING_DOWN))
        elif f.exception() is not None:
            waiter.set_exception(f.exception())
        else:
            waiter.set_result(f.result())

    def stop(self) -> None:
        """Stops at once (a second Ctrl-C): every request not answered yet gets :class:`ShuttingDown`,
        the waiting jobs are dropped, new ones refused, and :attr:`stopping` tells the running one
        to save nothing. Safe to call from a signal handler or another thread: the work is done on
        the event loop (a signal handler that took the executor's lock itself could deadlock)."""
        self.stopping = True
        loop = self._loop
        if loop is None:  # nothing was ever run
            self._executor.shutdown(wait=False, cancel_futures=True)
            return
        try:
            loop.call_soon_threadsafe(self._stop_now)
        except RuntimeError:  # the loop is closed already
            pass

    def _stop_now(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_exception(ShuttingDown(SHUTTING_DOWN))

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1
            self.completed += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
