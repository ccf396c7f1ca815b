"""The approximate-nearest-neighbour index over knowledge-base embeddings (usearch HNSW).

The database is the source of truth; this index is a derived copy that makes
search fast. It is saved to a folder with a small ``index.json`` that records
which embedder filled it and the last database change it holds, so that a
loaded index can replay what happened after it was saved, and an index from
another embedder or a damaged file is recognised and rebuilt.

usearch was chosen over hnswlib and faiss by measurement (README, "The vector
index: measured"): it alone removes entries for real. Vectors are stored as
float16 by default, which took 41 % less memory than float32 there at no
measured loss of recall.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from usearch.index import Index, MetricKind

__all__ = ["IndexIdentity", "VectorIndex"]

logger = logging.getLogger(__name__)

INDEX_FILE = "index.usearch"
META_FILE = "index.json"
FORMAT = 1


@dataclass(frozen=True)
class IndexIdentity:
    """What must match for a saved index to be reused."""

    embedder: str
    dimension: int
    dtype: str = "f16"
    connectivity: int = 16
    format: int = FORMAT


class VectorIndex:
    """Cosine-similarity HNSW index keyed by knowledge-entry id; safe to use from threads."""

    def __init__(
        self,
        identity: IndexIdentity,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 0,
    ) -> None:
        self.identity = identity
        self.threads = threads
        self.last_change_id = 0
        self._lock = threading.RLock()
        self._index = Index(
            ndim=identity.dimension,
            metric=MetricKind.Cos,
            dtype=identity.dtype,
            connectivity=identity.connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def keys(self) -> np.ndarray:
        with self._lock:
            return np.asarray(self._index.keys, dtype=np.int64)

    def contains(self, key: int) -> bool:
        with self._lock:
            return bool(self._index.contains(key))

    def upsert(self, keys: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (N, D) under ``keys``, replacing vectors already held under them."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.identity.dimension):
            raise ValueError(
                f"expected vectors of shape ({len(keys)}, {self.identity.dimension}), "
                f"found {vectors.shape}"
            )
        with self._lock:
            self.remove(keys)
            self._index.add(keys, vectors, threads=self.threads)

    def remove(self, keys: Sequence[int] | np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return
        with self._lock:
            present = np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
            if present.any():
                self._index.remove(keys[present])

    def search(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` nearest keys to ``query`` (D,) and their cosine similarities."""
        with self._lock:
            if len(self._index) == 0 or count <= 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            matches = self._index.search(
                np.asarray(query, np.float32), min(count, len(self._index))
            )
        keys = np.asarray(matches.keys, dtype=np.int64)
        return keys, (1.0 - np.asarray(matches.distances, dtype=np.float32))

    def vectors(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored vectors (N, D) of ``keys``, as float32."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return np.empty((0, self.identity.dimension), np.float32)
        with self._lock:
            found = self._index.get(keys, dtype="f32")
        return np.asarray(found, dtype=np.float32).reshape(len(keys), self.identity.dimension)

    def search_among(
        self, query: np.ndarray, keys: Sequence[int] | np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search restricted to ``keys``: for filters that leave few candidates."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0 or count <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        similarities = self.vectors(keys) @ np.asarray(query, np.float32)
        top = np.argsort(-similarities, kind="stable")[:count]
        return keys[top], similarities[top].astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write the index and its metadata; readers never see a half-written file.

        Temporary names are unique, so that two writers sharing the folder by mistake
        replace each other's files instead of writing into one.
        """
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f"{os.getpid()}-{secrets.token_hex(4)}.tmp"
        with self._lock:
            temporary = folder / f"{INDEX_FILE}.{suffix}"
            self._index.save(str(temporary))
            meta = {
                **asdict(self.identity),
                "last_change_id": self.last_change_id,
                "size": len(self._index),
                "library": f"usearch {version('usearch')}",
            }
        _fsync(temporary)
        temporary.replace(folder / INDEX_FILE)
        meta_temporary = folder / f"{META_FILE}.{suffix}"
        meta_temporary.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        _fsync(meta_temporary)
        meta_temporary.replace(folder / META_FILE)

    @classmethod
    def load(
        cls,
        folder: Path,
        identity: IndexIdentity,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 0,
    ) -> VectorIndex | None:
        """The saved index, or None when there is none, it is damaged or from another embedder."""
        meta_path, index_path = folder / META_FILE, folder / INDEX_FILE
        if not meta_path.is_file() or not index_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            saved = IndexIdentity(**{k: meta[k] for k in asdict(identity)})
            last_change_id, size = int(meta["last_change_id"]), int(meta["size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "index metadata %s is unreadable (%s); it will be rebuilt", meta_path, exc
            )
            return None
        if saved != identity:
            logger.warning(
                "index in %s was built for %s, not %s; it will be rebuilt", folder, saved, identity
            )
            return None
        index = cls(identity, expansion_add, expansion_search, threads)
        try:
            index._index.load(str(index_path))
        except (RuntimeError, ValueError, OSError) as exc:
            logger.warning("index file %s is damaged (%s); it will be rebuilt", index_path, exc)
            return None
        if len(index._index) != size:
            logger.warning(
                "index file %s holds %d vectors, its metadata says %d; it will be rebuilt",
                index_path,
                len(index._index),
                size,
            )
            return None
        index.last_change_id = last_change_id
        return index


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
