"""Classify tickets: text in, labels with calibrated probabilities out.

``TicketClassifier`` owns the loaded model and the micro-batcher. It can swap
in another bundle while serving: requests already tokenized for the old model
finish on it, new ones go to the new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service import metrics
from service.errors import BusyError, ModelNotReadyError
from service.inference.batcher import MicroBatcher, QueueFullError
from service.inference.bundle import ModelBundle, TriageRuntime, bundle_record, softmax
from service.settings import Settings
from service.text import detect_language, ticket_text

__all__ = ["HeadPrediction", "LoadedModel", "Ticket", "TicketClassifier", "TicketPrediction"]

logger = logging.getLogger(__name__)

WARM_UP_TEXTS = (
    "query: The VPN disconnects every few minutes since this morning.",
    "query: Ich wurde für meine letzte Bestellung doppelt belastet und bitte um Erstattung.",
)


@dataclass(frozen=True)
class Ticket:
    body: str
    subject: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class HeadPrediction:
    label: str
    probability: float
    alternatives: list[tuple[str, float]]
    #: Every label with its calibrated probability (routing weighs the whole distribution).
    distribution: dict[str, float]


@dataclass(frozen=True)
class TicketPrediction:
    heads: dict[str, HeadPrediction]
    language: str
    language_detected: bool
    needs_review: bool
    review_heads: list[str]
    truncated: bool
    model_name: str
    model_version: str
    embedding: np.ndarray


@dataclass(frozen=True)
class LoadedModel:
    """A bundle with its runtime; replaced as a whole on reload."""

    bundle: ModelBundle
    runtime: TriageRuntime
    loaded_at: float
    load_seconds: float
    test_metrics: dict[str, dict[str, float]]


def headline_metrics(bundle: ModelBundle, variant: str) -> dict[str, dict[str, float]]:
    """Test accuracy and macro-F1 per head from the bundle's metrics.json, if it has one."""
    recorded = bundle_record(bundle.directory, "metrics.json").get("test", {})
    test = recorded.get(variant) or recorded.get("fp32", {})
    return {
        head: {"accuracy": values["accuracy"], "macro_f1": values["macro_f1"]}
        for head, values in test.items()
    }


def load_model(settings: Settings, model_dir: Path) -> LoadedModel:
    """Open a bundle, start its ONNX Runtime session and run one warm-up batch."""
    started = time.perf_counter()
    bundle = ModelBundle.load(model_dir)
    variant = settings.model_variant if settings.model_variant in bundle.model_files else "fp32"
    if variant != settings.model_variant:
        logger.warning("bundle %s has no %s graph; serving fp32", model_dir, settings.model_variant)
    runtime = TriageRuntime(bundle, variant, settings.provider, settings.threads or None)
    runtime.run(list(WARM_UP_TEXTS))
    detect_language(WARM_UP_TEXTS[0])  # loads the detector's model, not the first request
    elapsed = time.perf_counter() - started
    logger.info(
        "model %s %s loaded in %.1f s: %s, provider %s",
        bundle.name,
        bundle.version,
        elapsed,
        ", ".join(f"{len(labels)} {head} labels" for head, labels in bundle.heads.items()),
        runtime.provider,
    )
    return LoadedModel(bundle, runtime, time.time(), elapsed, headline_metrics(bundle, variant))


class TicketClassifier:
    """The prediction service behind the API and the bulk CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.batcher = MicroBatcher(
            settings.max_batch_size, settings.max_batch_wait_ms, settings.max_queue_size
        )
        self.model: LoadedModel | None = None
        self._reload_lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self.model is not None

    async def start(self, model_dir: Path | None = None) -> None:
        """Start batching, then load the model in a worker thread."""
        await self.batcher.start()
        try:
            self.model = await asyncio.to_thread(
                load_model, self.settings, model_dir or self.settings.model_dir
            )
        except Exception:
            logger.exception("the model could not be loaded; /ready stays 503")
            raise

    async def stop(self) -> None:
        await self.batcher.stop()

    async def reload(self, model_dir: Path | None = None) -> LoadedModel:
        """Load a bundle and swap it in; in-flight requests finish on the old model."""
        async with self._reload_lock:
            loaded = await asyncio.to_thread(
                load_model, self.settings, model_dir or self.settings.model_dir
            )
            self.model = loaded
            return loaded

    async def classify(self, tickets: Sequence[Ticket]) -> list[TicketPrediction]:
        """Predictions for ``tickets``; ``ModelNotReadyError`` while the model loads,
        ``BusyError`` when the batcher's queue is full."""
        model = self.model
        if model is None:
            raise ModelNotReadyError("the model is still loading; retry in a few seconds")
        runtime, bundle = model.runtime, model.bundle
        texts = [ticket_text(t.subject, t.body, bundle.text_prefix) for t in tickets]
        ids, truncated = runtime.encode(texts)
        try:
            results = await self.batcher.submit(runtime.run_ids, ids)
        except QueueFullError as exc:
            raise BusyError(f"the service is at capacity ({exc}); retry shortly") from exc
        predictions = []
        for ticket, text, result, cut in zip(tickets, texts, results, truncated, strict=True):
            language, detected = ticket.language, False
            if not language:
                language, detected = detect_language(text[len(bundle.text_prefix) :])[0], True
            heads = {head: self._head(head, result.logits[head], bundle) for head in bundle.heads}
            review = [h for h, p in heads.items() if p.probability < self.settings.threshold(h)]
            for head, prediction in heads.items():
                metrics.PREDICTIONS.labels(head, prediction.label).inc()
            predictions.append(
                TicketPrediction(
                    heads=heads,
                    language=language,
                    language_detected=detected,
                    needs_review=bool(review),
                    review_heads=review,
                    truncated=bool(cut),
                    model_name=bundle.name,
                    model_version=bundle.version,
                    embedding=result.embedding,
                )
            )
        return predictions

    def _head(self, head: str, logits: np.ndarray, bundle: ModelBundle) -> HeadPrediction:
        probabilities = softmax(logits[None, :], bundle.temperatures[head])[0]
        order = np.argsort(-probabilities)
        labels = bundle.heads[head]
        ranked = [(labels[i], float(probabilities[i])) for i in order]
        return HeadPrediction(
            label=ranked[0][0],
            probability=ranked[0][1],
            alternatives=ranked[1 : 1 + self.settings.top_alternatives],
            distribution=dict(ranked),
        )

    def describe(self) -> dict[str, Any]:
        """The loaded model: name, version, labels and headline metrics."""
        if self.model is None:
            raise RuntimeError("the model is still loading")
        bundle = self.model.bundle
        return {
            "name": bundle.name,
            "version": bundle.version,
            "variant": self.model.runtime.variant,
            "provider": self.model.runtime.provider,
            "directory": str(bundle.directory),
            "heads": bundle.heads,
            "temperatures": bundle.temperatures,
            "max_length": bundle.max_length,
            "test_metrics": self.model.test_metrics,
            "loaded_at": self.model.loaded_at,
        }
