"""Settings and the micro-batcher, without HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from service.inference.batcher import MicroBatcher, QueueFullError
from service.settings import Settings, SettingsError


def echo_model(
    batches: list[int],
) -> Callable[[Sequence[Sequence[int]]], tuple[dict[str, np.ndarray], np.ndarray]]:
    """A stand-in model whose logits repeat each ticket's first id; records batch sizes."""

    def run(tickets: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        batches.append(len(tickets))
        first = np.array([[float(t[0])] for t in tickets])
        return {"head": first}, np.ones((len(tickets), 2))

    return run


def test_settings_read_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "TRIAGE_MODEL_DIR": "/models/acme",
            "TRIAGE_MAX_BATCH_SIZE": "8",
            "TRIAGE_MAX_BATCH_WAIT_MS": "2.5",
            "TRIAGE_CONFIDENCE_THRESHOLDS": "queue=0.7, priority=0.4",
        }
    )

    assert settings.model_dir == Path("/models/acme")
    assert settings.max_batch_size == 8 and settings.max_batch_wait_ms == 2.5
    assert settings.threshold("queue") == 0.7 and settings.threshold("type") == 0.5


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRIAGE_PROVIDER", "tpu", "TRIAGE_PROVIDER: expected one of ('auto', 'cpu', 'cuda')"),
        ("TRIAGE_PORT", "http", "TRIAGE_PORT: expected a value like 8000, found 'http'"),
        ("TRIAGE_MAX_BATCH_SIZE", "0", "TRIAGE_MAX_BATCH_SIZE: expected 1..512, found 0"),
        ("TRIAGE_CONFIDENCE_THRESHOLDS", "queue", "TRIAGE_CONFIDENCE_THRESHOLDS: expected"),
    ],
)
def test_bad_settings_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env({variable: value})


def test_batcher_returns_results_in_order_and_batches_concurrent_tickets() -> None:
    sizes: list[int] = []
    run = echo_model(sizes)

    async def scenario() -> list[float]:
        batcher = MicroBatcher(max_batch_size=8, max_wait_ms=50, max_queue_size=100)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(run, [[i]]) for i in range(12)))
        await batcher.stop()
        return [float(r[0].logits["head"][0]) for r in results]

    assert asyncio.run(scenario()) == [float(i) for i in range(12)]
    assert sum(sizes) == 12 and max(sizes) == 8


def test_batcher_sorts_by_length_within_a_round() -> None:
    sizes: list[int] = []
    seen: list[list[int]] = []

    def run(tickets: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        seen.append([len(t) for t in tickets])
        return echo_model(sizes)(tickets)

    async def scenario() -> None:
        batcher = MicroBatcher(max_batch_size=2, max_wait_ms=50, max_queue_size=100)
        await batcher.start()
        await batcher.submit(run, [[1] * 5, [2] * 1, [3] * 4, [4] * 2])
        await batcher.stop()

    asyncio.run(scenario())
    assert seen == [[1, 2], [4, 5]]


def test_batcher_refuses_more_tickets_than_the_queue_holds() -> None:
    async def scenario() -> None:
        batcher = MicroBatcher(max_batch_size=4, max_wait_ms=1, max_queue_size=3)
        await batcher.start()
        try:
            await batcher.submit(echo_model([]), [[1], [2], [3], [4]])
        finally:
            await batcher.stop()

    with pytest.raises(QueueFullError, match="limit 3"):
        asyncio.run(scenario())
