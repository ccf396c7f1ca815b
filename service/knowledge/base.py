"""The knowledge base: resolved tickets in the database, their vectors in an ANN index.

``KnowledgeBase`` is used the same way by the API and the command line. Its
methods block (database and model calls); the API runs them in worker threads.
Writers are serialised by one lock; readers search the index concurrently.

Consistency: the database is written first and is the truth. The index is
updated after each write, saved every few seconds, and on ``open`` it is
loaded, brought up to date from the change log, and rebuilt from the stored
vectors when it is missing, damaged, from another embedder, or still disagrees
with the database.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from tqdm.auto import tqdm

from service.errors import InputError
from service.knowledge.embedders import Embedder
from service.knowledge.index import IndexIdentity, VectorIndex
from service.knowledge.records import (
    EntryInput,
    KnowledgeRecord,
    SuggestFilters,
    Suggestion,
    WriteResult,
)
from service.knowledge.store import EntryRow, KnowledgeStore
from service.security.privacy import Redactor
from service.settings import KnowledgeSettings
from service.text import detect_language

__all__ = ["IndexState", "KnowledgeBase"]

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
# Candidates fetched per suggestion asked for, so that folding near-duplicates and
# filtering still leave enough.
_OVERFETCH = 4
_REEMBED_CHUNK = 256


@dataclass(frozen=True)
class IndexState:
    size: int
    last_change_id: int
    how: str  # "loaded", "loaded, N changes replayed" or "rebuilt"


def word_shingles(text: str) -> set[str]:
    words = _WORD.findall(text.casefold())
    return set(words) | {f"{a} {b}" for a, b in itertools.pairwise(words)}


def overlap(first: set[str], second: set[str]) -> float:
    if not first or not second:
        return 0.0
    return len(first & second) / len(first | second)


class KnowledgeBase:
    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        index_dir: Path,
        settings: KnowledgeSettings | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.store = KnowledgeStore(engine)
        #: When set, personal data is replaced by placeholders before entries are stored
        #: or embedded.
        self.redactor = redactor
        self.embedder = embedder
        self.index_dir = index_dir
        self.settings = settings or KnowledgeSettings()
        self.index: VectorIndex | None = None
        self._write_lock = threading.RLock()
        self._dirty = False
        # Change ids this object wrote and already applied to the index: sync() skips them.
        self._applied: set[int] = set()

    # Life cycle.

    @property
    def identity(self) -> IndexIdentity:
        return IndexIdentity(
            embedder=self.embedder.identity,
            dimension=self.embedder.dimension,
            dtype=self.settings.index_dtype,
            connectivity=self.settings.index_connectivity,
        )

    def _new_index(self) -> VectorIndex:
        return VectorIndex(self.identity, expansion_search=self.settings.index_expansion_search)

    def open(self, progress: bool = False) -> IndexState:
        """Embed entries stored by another embedder, then load, catch up or rebuild the index."""
        with self._write_lock:
            self.reembed_stale(progress)
            index = VectorIndex.load(
                self.index_dir, self.identity, expansion_search=self.settings.index_expansion_search
            )
            how = "loaded"
            if index is not None:
                self.index = index
                applied = self.sync()
                how = f"loaded, {applied} changes replayed" if applied else how
                if len(index) != self.store.count():
                    logger.warning(
                        "index holds %d vectors, the database %d entries; rebuilding",
                        len(index),
                        self.store.count(),
                    )
                    index = None
            if index is None:
                self.index = self.rebuild(progress)
                how = "rebuilt"
            assert self.index is not None
            self.save()
            state = IndexState(len(self.index), self.index.last_change_id, how)
        logger.info(
            "knowledge base open: %d entries, embedder %s, index %s",
            state.size,
            self.embedder.identity,
            state.how,
        )
        return state

    def rebuild(self, progress: bool = False) -> VectorIndex:
        """A new index from the vectors stored in the database."""
        started = time.perf_counter()
        index = self._new_index()
        index.last_change_id = self.store.last_change_id()  # later changes replay on sync
        total = self.store.count()
        with tqdm(total=total, desc="indexing", unit="entry", disable=not progress) as bar:
            for ids, vectors in self.store.iter_embeddings(self.embedder.identity):
                index.upsert(ids, vectors)
                bar.update(len(ids))
        logger.info(
            "built the knowledge index of %d vectors in %.1f s",
            len(index),
            time.perf_counter() - started,
        )
        return index

    def reembed_stale(self, progress: bool = False) -> int:
        """Embed again every entry whose stored vector comes from another embedder."""
        stale = self.store.count_stale(self.embedder.identity)
        if not stale:
            return 0
        logger.info("embedding %d entries again with %s", stale, self.embedder.identity)
        done = 0
        with tqdm(total=stale, desc="re-embedding", unit="entry", disable=not progress) as bar:
            while chunk := self.store.stale(self.embedder.identity, _REEMBED_CHUNK):
                ids = [entry_id for entry_id, _, _ in chunk]
                vectors = self.embedder.embed([s for _, s, _ in chunk], [b for _, _, b in chunk])
                self.store.set_embeddings(
                    dict(zip(ids, vectors, strict=True)), self.embedder.identity
                )
                done += len(chunk)
                bar.update(len(chunk))
        return done

    def sync(self) -> int:
        """Apply database changes the index does not hold yet; how many entries changed."""
        with self._write_lock:
            index = self._require_index()
            changes = self.store.changes(index.last_change_id)
            if not changes:
                return 0
            changed = sorted({entry for change, entry in changes if change not in self._applied})
            self._applied.difference_update(change for change, _ in changes)
            index.last_change_id = changes[-1][0]
            self._dirty = True
            if not changed:
                return 0
            vectors = self.store.embeddings(changed, self.embedder.identity)
            gone = [entry_id for entry_id in changed if entry_id not in vectors]
            index.remove(gone)
            if vectors:
                index.upsert(list(vectors), np.stack(list(vectors.values())))
            return len(changed)

    def save(self) -> None:
        """Write the index to disk, recording the last change it holds.

        It first catches up with the change log, which also moves that mark past this
        process's own writes, so the next open replays only what came after."""
        with self._write_lock:
            self.sync()
            self._require_index().save(self.index_dir)
            self._dirty = False

    def save_if_changed(self) -> bool:
        with self._write_lock:
            if not self._dirty:
                return False
            self.save()
            return True

    def _require_index(self) -> VectorIndex:
        if self.index is None:
            raise RuntimeError("the knowledge base is not open")
        return self.index

    # Writes.

    def add(self, entries: Sequence[EntryInput]) -> list[WriteResult]:
        """Insert or update entries by ``source_id``; durable once this returns."""
        _check_unique(entries)
        if self.redactor is not None:
            entries = [self._redacted(entry) for entry in entries]
        with self._write_lock:
            try:
                return self._add(entries)
            except IntegrityError:
                # Another process inserted one of these source ids meanwhile: now it is
                # known, and the retry updates it.
                return self._add(entries)

    def _add(self, entries: Sequence[EntryInput]) -> list[WriteResult]:
        index = self._require_index()
        existing = self.store.existing([e.source_id for e in entries])
        languages = [e.language or detect_language(f"{e.subject}\n{e.body}")[0] for e in entries]
        hashes = [e.content_hash(lang) for e, lang in zip(entries, languages, strict=True)]

        results, changed, to_embed = [], [], []
        for entry, language, content_hash in zip(entries, languages, hashes, strict=True):
            known = existing.get(entry.source_id)
            if known is not None and known.content_hash == content_hash:
                results.append(WriteResult(entry.source_id, "unchanged"))
                continue
            results.append(WriteResult(entry.source_id, "updated" if known else "created"))
            changed.append((entry, language, content_hash))
            if self._needs_embedding(entry, known):
                to_embed.append(entry)
        if not changed:
            return results

        embedded = self.embedder.embed([e.subject for e in to_embed], [e.body for e in to_embed])
        vectors = {e.source_id: v for e, v in zip(to_embed, embedded, strict=True)}
        ids, change_ids = self.store.write(changed, existing, vectors, self.embedder.identity)

        # The index follows the database; what it misses now, sync() brings in later.
        fresh = [ids[source_id] for source_id in vectors]
        index.upsert(fresh, embedded)
        self._applied.update(change_ids)
        self._dirty = True
        return results

    def _redacted(self, entry: EntryInput) -> EntryInput:
        assert self.redactor is not None
        redact = self.redactor.redact
        return dataclasses.replace(
            entry,
            subject=redact(entry.subject),
            body=redact(entry.body),
            resolution=redact(entry.resolution),
        )

    def _needs_embedding(self, entry: EntryInput, known: EntryRow | None) -> bool:
        return (
            known is None
            or known.embedder != self.embedder.identity
            or known.subject != entry.subject
            or known.body != entry.body
        )

    def delete(self, source_id: str) -> bool:
        with self._write_lock:
            deleted = self.store.delete(source_id)
            if deleted is None:
                return False
            entry_id, change_id = deleted
            self._require_index().remove([entry_id])
            self._applied.add(change_id)
            self._dirty = True
            return True

    # Reads.

    def get(self, source_id: str) -> KnowledgeRecord | None:
        return self.store.get(source_id)

    def embed_query(self, subject: str | None, body: str) -> np.ndarray:
        return np.asarray(self.embedder.embed([subject], [body])[0])

    def suggest(
        self,
        query: np.ndarray,
        k: int,
        filters: SuggestFilters | None = None,
    ) -> list[Suggestion]:
        """The ``k`` most similar entries to a query vector, near-duplicates folded together."""
        filters = filters or SuggestFilters()
        keys, scores = self._candidates(query, k * _OVERFETCH + 5, filters)
        records = self.store.records([int(key) for key in keys])
        suggestions: list[Suggestion] = []
        kept_shingles: list[tuple[set[str], set[str]]] = []
        for key, score in zip(keys, scores, strict=True):
            record = records.get(int(key))
            if record is None:  # deleted since the index was searched
                continue
            text = word_shingles(f"{record.subject}\n{record.body}")
            answer = word_shingles(record.resolution)
            twin = self._near_duplicate_of(text, answer, kept_shingles)
            if twin is not None:
                suggestions[twin].duplicates.append(record.source_id)
                continue
            if len(suggestions) == k:
                continue  # still fold duplicates of the ones already kept
            suggestions.append(Suggestion(record, float(score)))
            kept_shingles.append((text, answer))
        return suggestions

    def _near_duplicate_of(
        self, text: set[str], answer: set[str], kept: list[tuple[set[str], set[str]]]
    ) -> int | None:
        threshold = self.settings.duplicate_overlap
        for position, (kept_text, kept_answer) in enumerate(kept):
            if overlap(text, kept_text) >= threshold or overlap(answer, kept_answer) >= threshold:
                return position
        return None

    def _candidates(
        self, query: np.ndarray, count: int, filters: SuggestFilters
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self._require_index()
        if not filters.active:
            return index.search(query, count)
        matching = self.store.count(filters)
        if matching == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if matching <= self.settings.exact_search_limit:
            return index.search_among(query, self.store.matching_ids(filters), count)
        # Enough entries match that approximate search over all, then filtering, finds
        # ``count`` of them when it fetches in proportion to how few match.
        fetch = min(len(index), int(np.ceil(count * 2 * len(index) / matching)))
        keys, scores = index.search(query, fetch)
        allowed = set(self.store.matching_ids(filters, among=[int(k) for k in keys]))
        keep = np.array([int(k) in allowed for k in keys], dtype=bool)
        return keys[keep][:count], scores[keep][:count]

    def statistics(self) -> dict[str, object]:
        index = self._require_index()
        return {
            **self.store.statistics(),
            "embedder": self.embedder.identity,
            "index": {
                "vectors": len(index),
                "last_change_id": index.last_change_id,
                "dtype": self.identity.dtype,
                "directory": str(self.index_dir),
            },
        }


def _check_unique(entries: Sequence[EntryInput]) -> None:
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        if entry.source_id in seen:
            raise InputError(
                f"entries[{position}].source_id: expected each source_id once per request, "
                f"found {entry.source_id!r} again"
            )
        seen.add(entry.source_id)
