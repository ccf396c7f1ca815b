"""Dynamic micro-batching: concurrent requests share one pass through the model.

Requests put tokenized tickets on a bounded queue. One worker takes the first
waiting ticket, waits up to ``max_wait`` for more to arrive, sorts what it
collected by length and cuts it into batches of at most ``max_batch_size``, so
tickets of similar length are padded together. The model runs in a worker
thread, leaving the event loop free to accept requests meanwhile. A full queue
refuses new work at once (the API answers 503) instead of letting callers hang.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service import metrics

__all__ = ["MicroBatcher", "QueueFullError", "TicketResult"]

logger = logging.getLogger(__name__)

# Collect up to this many batches' worth of tickets per round, to sort them by length.
_SORT_POOL_BATCHES = 4


class QueueFullError(RuntimeError):
    """More tickets are waiting than the queue holds; retry shortly."""


@dataclass
class TicketResult:
    """One ticket's raw logits per head and its embedding."""

    logits: dict[str, np.ndarray]
    embedding: np.ndarray


RunBatch = Callable[[Sequence[Sequence[int]]], tuple[dict[str, np.ndarray], np.ndarray]]


@dataclass
class _Pending:
    ids: Sequence[int]
    run: RunBatch  # the model the ticket was tokenized for; a reload must not mix them
    future: asyncio.Future[TicketResult]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Coalesces tickets from concurrent requests into length-sorted batches."""

    def __init__(self, max_batch_size: int, max_wait_ms: float, max_queue_size: int) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue_size = max_queue_size
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    @property
    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue_size)
        self._worker = asyncio.create_task(self._work(), name="micro-batcher")
        logger.info(
            "batching up to %d tickets, waiting at most %.1f ms, queue of %d",
            self.max_batch_size,
            self.max_wait * 1000,
            self.max_queue_size,
        )

    async def stop(self) -> None:
        """Finish every queued ticket, then stop the worker."""
        if self._queue is not None and self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def submit(self, run: RunBatch, tickets: Sequence[Sequence[int]]) -> list[TicketResult]:
        """Queue tickets (all or none) and wait for their results, in order."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        if self._queue.qsize() + len(tickets) > self.max_queue_size:
            metrics.REJECTED.inc(len(tickets))
            raise QueueFullError(
                f"{self._queue.qsize()} tickets are waiting (limit {self.max_queue_size})"
            )
        loop = asyncio.get_running_loop()
        pending = [_Pending(ids, run, loop.create_future()) for ids in tickets]
        for item in pending:
            self._queue.put_nowait(item)
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return list(await asyncio.gather(*(item.future for item in pending)))

    async def _collect(self) -> list[_Pending]:
        assert self._queue is not None
        collected = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait
        limit = self.max_batch_size * _SORT_POOL_BATCHES
        while len(collected) < limit:
            # Take what is already waiting without sleeping; then wait out the deadline.
            if not self._queue.empty():
                collected.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or len(collected) >= self.max_batch_size:
                break
            try:
                collected.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return collected

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            collected = await self._collect()
            metrics.QUEUE_DEPTH.set(self._queue.qsize())
            try:
                for batch in self._batches(collected):
                    await self._run(loop, batch)
            finally:
                for _ in collected:
                    self._queue.task_done()

    def _batches(self, collected: list[_Pending]) -> list[list[_Pending]]:
        """Group by model, sort by length, cut into batches of at most max_batch_size."""
        # Bound methods of one runtime are equal (and hash alike) though not identical.
        groups: dict[RunBatch, list[_Pending]] = {}
        for item in collected:
            groups.setdefault(item.run, []).append(item)
        batches: list[list[_Pending]] = []
        for items in groups.values():
            items.sort(key=lambda item: len(item.ids))
            size = self.max_batch_size
            batches.extend(items[i : i + size] for i in range(0, len(items), size))
        return batches

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        run = batch[0].run
        try:
            logits, embeddings = await loop.run_in_executor(
                self._executor, run, [item.ids for item in batch]
            )
        except Exception as exc:  # the model failed: every waiting request must hear of it
            logger.exception("model run failed for a batch of %d", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - started
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_SECONDS.observe(elapsed)
        logger.debug("batch of %d ran in %.1f ms", len(batch), elapsed * 1000)
        for row, item in enumerate(batch):
            if not item.future.done():
                result: Any = TicketResult({h: v[row] for h, v in logits.items()}, embeddings[row])
                item.future.set_result(result)
