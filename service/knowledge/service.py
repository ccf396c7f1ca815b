"""The knowledge base inside the running server: start-up, upkeep and model changes.

The knowledge base opens in the background once the model is loaded (the
``base`` and ``bundle`` embedders come from it). A maintenance task then picks
up writes made by other processes and saves the index every few seconds. When
another bundle is loaded whose embedder gives other vectors (always so for
``bundle``; for ``base`` only when it was trained from another base model),
every entry is embedded again and the index rebuilt; meanwhile knowledge
requests answer 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Engine

from service.errors import KnowledgeNotReadyError
from service.inference.classifier import TicketClassifier
from service.knowledge.base import KnowledgeBase
from service.knowledge.embedders import Embedder, UniversalSentenceEncoder, make_embedder
from service.security.privacy import knowledge_redactor
from service.settings import Settings

__all__ = ["KnowledgeService"]

logger = logging.getLogger(__name__)


class KnowledgeService:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.base: KnowledgeBase | None = None
        self.status = "starting"
        self._maintenance: asyncio.Task[None] | None = None
        self._opening: asyncio.Task[None] | None = None
        self._universal: UniversalSentenceEncoder | None = None

    @property
    def ready(self) -> bool:
        return self.base is not None

    def require(self) -> KnowledgeBase:
        if self.base is None:
            raise KnowledgeNotReadyError(f"the knowledge base is not ready yet ({self.status})")
        return self.base

    def embedder_for(self, classifier: TicketClassifier) -> Embedder:
        name = self.settings.knowledge.embedder
        if name == "use":
            if self._universal is None:
                self._universal = UniversalSentenceEncoder()
            return self._universal
        assert classifier.model is not None
        runtime = classifier.model.runtime
        return make_embedder(
            name, runtime.bundle, self.settings.provider, self.settings.threads or None, runtime
        )

    async def start(self, classifier: TicketClassifier) -> None:
        """Open the knowledge base for the loaded model and start its upkeep."""
        await self._open(self.embedder_for(classifier))
        self._maintenance = asyncio.create_task(self._maintain(), name="knowledge-upkeep")

    async def model_changed(self, classifier: TicketClassifier) -> None:
        """After a reload: if the embedder's vectors change, embed every entry again."""
        embedder = self.embedder_for(classifier)
        if self.base is not None and embedder.identity == self.base.embedder.identity:
            return
        self.base, self.status = None, f"embedding every entry again for {embedder.identity}"
        self._opening = asyncio.create_task(self._open(embedder), name="knowledge-reopen")

    async def _open(self, embedder: Embedder) -> None:
        base = KnowledgeBase(
            self.engine,
            embedder,
            self.settings.knowledge_index_dir,
            self.settings.knowledge,
            knowledge_redactor(self.settings.privacy),
        )
        self.status = f"opening with {embedder.identity}"
        try:
            await asyncio.to_thread(base.open)
        except Exception:
            self.status = "failed to open; see the server log"
            logger.exception("the knowledge base could not be opened")
            raise
        self.base, self.status = base, "ready"

    async def _maintain(self) -> None:
        knowledge = self.settings.knowledge
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(knowledge.sync_interval_s)
            base = self.base
            if base is None:
                continue
            try:
                replayed = await asyncio.to_thread(base.sync)
                if replayed:
                    logger.info("knowledge index: %d entries changed by other processes", replayed)
                if time.monotonic() - last_save >= knowledge.save_interval_s:
                    await asyncio.to_thread(base.save_if_changed)
                    last_save = time.monotonic()
            except Exception:  # upkeep must outlive a passing database or disk error
                logger.exception("knowledge index upkeep failed; retrying")

    async def stop(self) -> None:
        for task in (self._maintenance, self._opening):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.base is not None:
            await asyncio.to_thread(self.base.save_if_changed)
