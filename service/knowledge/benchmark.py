"""Benchmark of approximate-nearest-neighbour indexes for the knowledge base.

    python -m service.knowledge.benchmark                    # both parts, the defaults below
    python -m service.knowledge.benchmark --skip-scale --libraries usearch-f16,hnswlib

Part one compares libraries at ``--compare-size`` vectors: usearch storing f32,
f16 and i8, hnswlib, and faiss ``IndexHNSWFlat`` (inner product on unit
vectors), all with the same HNSW parameters: connectivity (M) 16, expansion 128
while adding and 64 while searching. Part two builds the service's own
``VectorIndex`` at ``--scale-size`` vectors and also times saving and loading it.

The vectors are synthetic but clustered like ticket embeddings: a mixture of
``--clusters`` random unit centres, each vector its centre plus Gaussian noise
scaled for a mean cosine of about 0.75 to the centre, then normalised. Queries
are fresh draws from the same mixture. Every index is built and queried in a
fresh process, so one library's memory never shows in another's figure; the
vectors are generated there chunk by chunk from the seed, and the exact top ten
of each query come from brute-force matrix products over the same chunks,
regenerated here. No more than one chunk of vectors is held besides the index.

Writes ``report.json``, ``report.md`` and ``index-benchmark.png`` to ``--output``
and prints the Markdown report.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm
from usearch.index import Index, MetricKind

from service.knowledge.index import INDEX_FILE, IndexIdentity, VectorIndex

__all__ = [
    "LIBRARIES",
    "BenchmarkConfig",
    "BenchmarkError",
    "ClusteredVectors",
    "IndexRun",
    "ScaleRun",
    "exact_neighbours",
    "main",
    "measure_library",
    "measure_vector_index",
    "recall_at",
    "run_benchmark",
]

logger = logging.getLogger(__name__)

LIBRARIES = ("usearch-f32", "usearch-f16", "usearch-i8", "hnswlib", "faiss-hnsw")
REMOVAL = {
    "usearch-f32": "yes: remove",
    "usearch-f16": "yes: remove",
    "usearch-i8": "yes: remove",
    "hnswlib": "tombstone only: mark_deleted",
    "faiss-hnsw": "no",
    "VectorIndex": "yes: remove",
}
# The modules a part needs beyond the service's own dependencies, and how to get them.
INSTALL_HINTS = {
    "psutil": "pip install '.[bench]'",
    "hnswlib": "pip install '.[bench]'",
    "faiss": "pip install '.[bench]'",
    "matplotlib": "pip install matplotlib (it comes with '.[train]')",
}
LIBRARY_MODULES = {"hnswlib": "hnswlib", "faiss-hnsw": "faiss"}
DISTRIBUTIONS = ("numpy", "usearch", "hnswlib", "faiss-cpu", "psutil", "matplotlib")

TARGET_COSINE_TO_CENTRE = 0.75
CENTRE_STREAM, BASE_STREAM, QUERY_STREAM, WARM_UP_STREAM, SAMPLE_STREAM = 0, 1, 2, 3, 4
MIB = 2**20
REPORT_JSON, REPORT_MARKDOWN, REPORT_PLOT = "report.json", "report.md", "index-benchmark.png"

Result = TypeVar("Result")


class BenchmarkError(RuntimeError):
    """The benchmark cannot run as asked; the message says how to fix it."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """What every index in one benchmark shares: the vectors, the queries, the HNSW settings."""

    dimension: int = 384
    clusters: int = 2000
    seed: int = 0
    queries: int = 500
    warm_up_queries: int = 100
    neighbours: int = 10
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    chunk_size: int = 50_000

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            lowest = 0 if name in ("seed", "warm_up_queries") else 1
            if value < lowest:
                raise ValueError(f"{name} must be at least {lowest}, found {value}")


# Vectors: a seeded mixture of clusters, reproducible chunk by chunk.


class ClusteredVectors:
    """Unit vectors scattered around ``clusters`` random unit centres, like ticket embeddings."""

    def __init__(self, config: BenchmarkConfig) -> None:
        self.seed = config.seed
        self.dimension = config.dimension
        rng = np.random.default_rng([config.seed, CENTRE_STREAM])
        self.centres = _unit(rng.standard_normal((config.clusters, config.dimension), np.float32))
        # Noise of scale s per coordinate has squared length s²·D, so the cosine to the centre
        # is about 1 / sqrt(1 + s²·D); solved here for the target cosine.
        self.noise_scale = math.sqrt((TARGET_COSINE_TO_CENTRE**-2 - 1) / config.dimension)

    def draw(self, stream: int, chunk: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ``chunk`` of ``stream``: ``count`` unit vectors (count, D) and their centres."""
        rng = np.random.default_rng([self.seed, stream, chunk])
        centre_ids = rng.integers(0, len(self.centres), size=count)
        vectors = rng.standard_normal((count, self.dimension), np.float32)
        vectors *= self.noise_scale
        vectors += self.centres[centre_ids]
        return _unit(vectors), centre_ids

    def base_chunks(self, size: int, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """The ``size`` indexed vectors as (key of the first row, chunk (n, D)); key = row."""
        for chunk, start in enumerate(range(0, size, chunk_size)):
            vectors, _ = self.draw(BASE_STREAM, chunk, min(chunk_size, size - start))
            yield start, vectors

    def queries(self, count: int, stream: int = QUERY_STREAM) -> np.ndarray:
        return self.draw(stream, 0, count)[0]

    def mean_cosine_to_centre(self, count: int) -> float:
        vectors, centre_ids = self.draw(SAMPLE_STREAM, 0, count)
        return float(np.einsum("nd,nd->n", vectors, self.centres[centre_ids]).mean())


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def exact_neighbours(
    queries: np.ndarray, chunks: Iterable[tuple[int, np.ndarray]], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top ``count`` keys (Q, count) and cosines over unit-vector chunks, best first."""
    best_keys = np.empty((len(queries), 0), np.int64)
    best_similarities = np.empty((len(queries), 0), np.float32)
    for start, vectors in chunks:
        similarities = queries @ vectors.T  # (Q, n)
        taken = min(count, similarities.shape[1])
        top = np.argpartition(-similarities, taken - 1, axis=1)[:, :taken]
        keys = np.concatenate([best_keys, top + start], axis=1)
        found = np.take_along_axis(similarities, top, axis=1)
        candidates = np.concatenate([best_similarities, found], axis=1)
        order = np.argsort(-candidates, axis=1, kind="stable")[:, :count]
        best_keys = np.take_along_axis(keys, order, axis=1)
        best_similarities = np.take_along_axis(candidates, order, axis=1)
    return best_keys, best_similarities


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact neighbours (Q, k) that the index returned among its ``found`` (Q, k)."""
    hits = sum(len(np.intersect1d(row, exact)) for row, exact in zip(found, truth, strict=True))
    return hits / truth.size


# The indexes, behind one small interface so that all are built and queried alike.


class BenchmarkIndex(Protocol):
    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def ready_for_queries(self) -> None: ...

    def search(self, query: np.ndarray) -> np.ndarray: ...


class UsearchIndex:
    def __init__(self, dtype: str, config: BenchmarkConfig) -> None:
        self.neighbours = config.neighbours
        self.index = Index(
            ndim=config.dimension,
            metric=MetricKind.Cos,
            dtype=dtype,
            connectivity=config.connectivity,
            expansion_add=config.expansion_add,
            expansion_search=config.expansion_search,
        )

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(keys, vectors, threads=0)

    def ready_for_queries(self) -> None:
        pass

    def search(self, query: np.ndarray) -> np.ndarray:
        return np.asarray(self.index.search(query, self.neighbours, threads=1).keys, np.int64)


class HnswlibIndex:
    def __init__(self, config: BenchmarkConfig, size: int) -> None:
        import hnswlib

        self.neighbours = config.neighbours
        self.expansion_search = config.expansion_search
        self.index = hnswlib.Index(space="cosine", dim=config.dimension)
        self.index.init_index(
            max_elements=size,
            M=config.connectivity,
            ef_construction=config.expansion_add,
            random_seed=config.seed,
        )

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_items(vectors, keys, num_threads=-1)

    def ready_for_queries(self) -> None:
        self.index.set_ef(self.expansion_search)

    def search(self, query: np.ndarray) -> np.ndarray:
        labels, _ = self.index.knn_query(query, k=self.neighbours, num_threads=1)
        return np.asarray(labels[0], np.int64)


class FaissHnswIndex:
    """faiss numbers vectors in the order they are added, which is the order of the keys here."""

    def __init__(self, config: BenchmarkConfig) -> None:
        import faiss

        self.faiss = faiss
        self.neighbours = config.neighbours
        self.expansion_search = config.expansion_search
        self.index = faiss.IndexHNSWFlat(
            config.dimension, config.connectivity, faiss.METRIC_INNER_PRODUCT
        )
        self.index.hnsw.efConstruction = config.expansion_add
        faiss.omp_set_num_threads(os.cpu_count() or 1)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if int(keys[0]) != self.index.ntotal:
            raise BenchmarkError(
                f"faiss HNSW numbers vectors in order: expected first key {self.index.ntotal}, "
                f"found {int(keys[0])}"
            )
        self.index.add(vectors)

    def ready_for_queries(self) -> None:
        # One query at a time, like the other libraries; an OpenMP team per query only adds cost.
        self.faiss.omp_set_num_threads(1)
        self.index.hnsw.efSearch = self.expansion_search

    def search(self, query: np.ndarray) -> np.ndarray:
        _, labels = self.index.search(query.reshape(1, -1), self.neighbours)
        return np.asarray(labels[0], np.int64)


class ServiceIndex:
    """The service's ``VectorIndex``, as the knowledge base uses it."""

    def __init__(self, index: VectorIndex, neighbours: int) -> None:
        self.index = index
        self.neighbours = neighbours

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.upsert(keys, vectors)

    def ready_for_queries(self) -> None:
        pass

    def search(self, query: np.ndarray) -> np.ndarray:
        return self.index.search(query, self.neighbours)[0]


def open_index(library: str, config: BenchmarkConfig, size: int) -> BenchmarkIndex:
    if library.startswith("usearch-"):
        return UsearchIndex(library.removeprefix("usearch-"), config)
    if library == "hnswlib":
        return HnswlibIndex(config, size)
    if library == "faiss-hnsw":
        return FaissHnswIndex(config)
    raise BenchmarkError(f"unknown library {library!r}; expected one of {', '.join(LIBRARIES)}")


def require_modules(modules: Iterable[str]) -> None:
    """Import each module now, so that a missing one fails before minutes of work."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise BenchmarkError(
                f"{module} is needed for this benchmark but cannot be imported ({exc}); "
                f"install it: {INSTALL_HINTS.get(module, f'pip install {module}')}"
            ) from exc


# Measurements, each in the process that runs them; see `_in_fresh_process`.


@dataclass
class IndexRun:
    """What one worker process measured while building and querying an index."""

    build_seconds: float
    memory_added_mib: float
    latencies_ms: np.ndarray  # (Q,)
    found: np.ndarray  # (Q, k), -1 where the index returned fewer keys


@dataclass
class ScaleRun(IndexRun):
    index_file_mib: float
    save_seconds: float
    load_seconds: float


def _resident_bytes() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _build(
    index: BenchmarkIndex, vectors: ClusteredVectors, size: int, config: BenchmarkConfig, label: str
) -> float:
    """Add ``size`` vectors chunk by chunk; the seconds spent adding, generation not counted."""
    seconds = 0.0
    with tqdm(total=size, desc=f"building {label}", unit="vector", unit_scale=True) as progress:
        for start, chunk in vectors.base_chunks(size, config.chunk_size):
            keys = np.arange(start, start + len(chunk), dtype=np.uint64)
            began = time.perf_counter()
            index.add(keys, chunk)
            seconds += time.perf_counter() - began
            progress.update(len(chunk))
    return seconds


def _query(
    index: BenchmarkIndex, vectors: ClusteredVectors, config: BenchmarkConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Latency (Q,) in ms and keys found (Q, k), one query at a time after a warm-up."""
    index.ready_for_queries()
    for query in vectors.queries(config.warm_up_queries, WARM_UP_STREAM):
        index.search(query)
    queries = vectors.queries(config.queries)
    latencies = np.empty(len(queries), np.float64)
    found = np.full((len(queries), config.neighbours), -1, np.int64)
    for row, query in enumerate(queries):
        began = time.perf_counter_ns()
        keys = index.search(query)
        latencies[row] = (time.perf_counter_ns() - began) / 1e6
        kept = keys[: config.neighbours]
        found[row, : len(kept)] = kept
    return latencies, found


def measure_library(library: str, config: BenchmarkConfig, size: int) -> IndexRun:
    """Build one library's index of ``size`` vectors and query it; run it in a fresh process."""
    if library in LIBRARY_MODULES:
        require_modules([LIBRARY_MODULES[library]])
    vectors = ClusteredVectors(config)

    before = _resident_bytes()
    index = open_index(library, config, size)
    build_seconds = _build(index, vectors, size, config, library)
    memory_added = (_resident_bytes() - before) / MIB

    latencies, found = _query(index, vectors, config)
    return IndexRun(build_seconds, memory_added, latencies, found)


def scale_identity(config: BenchmarkConfig) -> IndexIdentity:
    """The identity of the scale run's index: the service's defaults (f16 storage)."""
    return IndexIdentity(embedder="synthetic-clustered", dimension=config.dimension)


def measure_vector_index(config: BenchmarkConfig, size: int, folder: Path) -> ScaleRun:
    """Build the service's ``VectorIndex``, save it to ``folder``, load it back and query that."""
    vectors = ClusteredVectors(config)
    identity = scale_identity(config)

    before = _resident_bytes()
    built = VectorIndex(identity, config.expansion_add, config.expansion_search)
    build_seconds = _build(ServiceIndex(built, config.neighbours), vectors, size, config, "index")
    memory_added = (_resident_bytes() - before) / MIB

    began = time.perf_counter()
    built.save(folder)
    save_seconds = time.perf_counter() - began
    index_file_mib = (folder / INDEX_FILE).stat().st_size / MIB
    del built
    gc.collect()

    began = time.perf_counter()
    loaded = VectorIndex.load(folder, identity, config.expansion_add, config.expansion_search)
    load_seconds = time.perf_counter() - began
    if loaded is None:
        raise BenchmarkError(f"the index saved to {folder} did not load back; see the warning")

    latencies, found = _query(ServiceIndex(loaded, config.neighbours), vectors, config)
    return ScaleRun(
        build_seconds,
        memory_added,
        latencies,
        found,
        index_file_mib=index_file_mib,
        save_seconds=save_seconds,
        load_seconds=load_seconds,
    )


def _in_fresh_process(label: str, function: Callable[..., Result], *arguments: Any) -> Result:
    """``function(*arguments)`` in a new spawned interpreter that holds nothing else."""
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(function, *arguments).result()
    except BrokenProcessPool as exc:
        raise BenchmarkError(
            f"the worker process measuring {label} died, perhaps out of memory; "
            "try a smaller --compare-size or --scale-size"
        ) from exc


# The two parts.


def _summary(run: IndexRun, truth: np.ndarray, size: int) -> dict[str, float]:
    return {
        "build_seconds": round(run.build_seconds, 3),
        "vectors_per_second": round(size / run.build_seconds, 1),
        "memory_added_mib": round(run.memory_added_mib, 1),
        "bytes_per_vector": round(run.memory_added_mib * MIB / size, 1),
        "latency_p50_ms": round(float(np.percentile(run.latencies_ms, 50)), 4),
        "latency_p99_ms": round(float(np.percentile(run.latencies_ms, 99)), 4),
        "latency_mean_ms": round(float(run.latencies_ms.mean()), 4),
        "recall_at_k": round(recall_at(run.found, truth), 4),
    }


def _ground_truth(
    vectors: ClusteredVectors, config: BenchmarkConfig, size: int
) -> tuple[np.ndarray, dict[str, float]]:
    chunks = tqdm(
        vectors.base_chunks(size, config.chunk_size),
        total=math.ceil(size / config.chunk_size),
        desc=f"exact search over {size:,}",
        unit="chunk",
    )
    truth, similarities = exact_neighbours(
        vectors.queries(config.queries), chunks, config.neighbours
    )
    facts = {
        "mean_top1_cosine": round(float(similarities[:, 0].mean()), 4),
        "mean_topk_cosine": round(float(similarities.mean()), 4),
    }
    return truth, facts


def run_comparison(config: BenchmarkConfig, size: int, libraries: Sequence[str]) -> dict[str, Any]:
    """Every library in ``libraries`` at ``size`` vectors, each in a fresh process."""
    if size < config.neighbours:
        raise BenchmarkError(f"--compare-size must be at least {config.neighbours}, found {size}")
    require_modules(
        ["psutil", *(LIBRARY_MODULES[name] for name in libraries if name in LIBRARY_MODULES)]
    )
    vectors = ClusteredVectors(config)
    truth, truth_facts = _ground_truth(vectors, config, size)

    results: dict[str, Any] = {"size": size, "exact_neighbours": truth_facts, "libraries": {}}
    for library in libraries:
        run = _in_fresh_process(library, measure_library, library, config, size)
        row = {**_summary(run, truth, size), "removal": REMOVAL[library]}
        results["libraries"][library] = row
        logger.info(
            "%s at %d vectors: built in %.1f s, +%.1f MiB, p50 %.3f ms, p99 %.3f ms, recall %.4f",
            library,
            size,
            row["build_seconds"],
            row["memory_added_mib"],
            row["latency_p50_ms"],
            row["latency_p99_ms"],
            row["recall_at_k"],
        )
    return results


def run_scale(config: BenchmarkConfig, size: int, output: Path) -> dict[str, Any]:
    """The service's ``VectorIndex`` (usearch, f16) at ``size`` vectors, saved and loaded."""
    if size < config.neighbours:
        raise BenchmarkError(f"--scale-size must be at least {config.neighbours}, found {size}")
    require_modules(["psutil"])
    vectors = ClusteredVectors(config)
    truth, truth_facts = _ground_truth(vectors, config, size)

    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scale-index-", dir=output) as folder:
        run = _in_fresh_process("VectorIndex", measure_vector_index, config, size, Path(folder))
    results = {
        "size": size,
        "dtype": scale_identity(config).dtype,
        "exact_neighbours": truth_facts,
        **_summary(run, truth, size),
        "index_file_mib": round(run.index_file_mib, 1),
        "save_seconds": round(run.save_seconds, 3),
        "load_seconds": round(run.load_seconds, 3),
        "removal": REMOVAL["VectorIndex"],
    }
    logger.info(
        "VectorIndex at %d vectors: built in %.1f s, +%.1f MiB, %.1f MiB on disk, recall %.4f",
        size,
        results["build_seconds"],
        results["memory_added_mib"],
        results["index_file_mib"],
        results["recall_at_k"],
    )
    return results


# The report.


def machine_facts() -> dict[str, Any]:
    import psutil

    processor = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    versions = {}
    for distribution in DISTRIBUTIONS:
        try:
            versions[distribution] = version(distribution)
        except PackageNotFoundError:
            versions[distribution] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "processor": processor,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def run_benchmark(
    config: BenchmarkConfig,
    output: Path,
    compare_size: int | None,
    scale_size: int | None,
    libraries: Sequence[str] = LIBRARIES,
) -> dict[str, Any]:
    """Run the parts whose size is given; write the report files to ``output`` and return it."""
    require_modules(["psutil", "matplotlib"])
    vectors = ClusteredVectors(config)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "parameters": {
            **asdict(config),
            "build_threads": os.cpu_count(),
            "query_threads": 1,
            "mean_cosine_to_centre": round(vectors.mean_cosine_to_centre(10_000), 4),
        },
    }
    if compare_size is not None:
        report["compare"] = run_comparison(config, compare_size, libraries)
    if scale_size is not None:
        report["scale"] = run_scale(config, scale_size, output)

    output.mkdir(parents=True, exist_ok=True)
    (output / REPORT_JSON).write_text(json.dumps(report, indent=2), encoding="utf-8")
    (output / REPORT_MARKDOWN).write_text(report_markdown(report), encoding="utf-8")
    plot_report(report, output / REPORT_PLOT)
    return report


def report_markdown(report: Mapping[str, Any]) -> str:
    parameters, machine = report["parameters"], report["machine"]
    k = parameters["neighbours"]
    lines = [
        "# Knowledge-index benchmark",
        "",
        f"Synthetic clustered vectors shaped like ticket embeddings: dimension "
        f"{parameters['dimension']}, {parameters['clusters']:,} random unit centres, each vector "
        f"its centre plus Gaussian noise (mean cosine to the centre "
        f"{parameters['mean_cosine_to_centre']}), normalised; seed {parameters['seed']}. "
        f"{parameters['queries']:,} queries, fresh draws from the same mixture, scored against "
        f"the exact top {k} by cosine (brute force). HNSW parameters for every index: "
        f"connectivity (M) {parameters['connectivity']}, expansion "
        f"{parameters['expansion_add']} while adding, {parameters['expansion_search']} while "
        f"searching. Each index is built with {parameters['build_threads']} threads in a fresh "
        f"process, in chunks of {parameters['chunk_size']:,}; build time counts only the add "
        "calls; memory is the growth of the process's resident set (psutil RSS) across the "
        "build. Latency is wall time of one query at a time (k = "
        f"{k}, one thread, through the Python binding) after {parameters['warm_up_queries']} "
        "warm-up queries.",
    ]
    if "compare" in report:
        compare = report["compare"]
        lines += [
            "",
            f"## Library comparison: {compare['size']:,} vectors",
            "",
            "| library | build s | vectors/s | memory MiB | bytes/vector | p50 ms | p99 ms "
            f"| recall@{k} | removal |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for library, row in compare["libraries"].items():
            lines.append(
                f"| {library} | {row['build_seconds']:.1f} | {row['vectors_per_second']:,.0f} | "
                f"{row['memory_added_mib']:.1f} | {row['bytes_per_vector']:.0f} | "
                f"{row['latency_p50_ms']:.3f} | {row['latency_p99_ms']:.3f} | "
                f"{row['recall_at_k']:.4f} | {row['removal']} |"
            )
    if "scale" in report:
        scale = report["scale"]
        lines += [
            "",
            f"## Scale: the service's VectorIndex (usearch {scale['dtype']}), "
            f"{scale['size']:,} vectors",
            "",
            "Queried after saving and loading it back; the load reads a file just written, "
            "so it is probably served from the page cache.",
            "",
            "| build s | memory MiB | index file MiB | save s | load s | p50 ms | p99 ms "
            f"| recall@{k} |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {scale['build_seconds']:.1f} | {scale['memory_added_mib']:.1f} | "
            f"{scale['index_file_mib']:.1f} | {scale['save_seconds']:.2f} | "
            f"{scale['load_seconds']:.2f} | {scale['latency_p50_ms']:.3f} | "
            f"{scale['latency_p99_ms']:.3f} | {scale['recall_at_k']:.4f} |",
        ]
    versions = ", ".join(f"{name} {value}" for name, value in machine["versions"].items())
    lines += [
        "",
        f"Machine: {machine['processor']}, {machine['cpu_count']} CPUs, "
        f"{machine['memory_gib']} GiB; {versions}. Run on {report['date']}.",
        "",
        f"![index benchmark]({REPORT_PLOT})",
        "",
    ]
    return "\n".join(lines)


def plot_report(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = report["parameters"]["neighbours"]
    entries: list[tuple[str, Mapping[str, Any]]] = []
    if "compare" in report:
        entries += list(report["compare"]["libraries"].items())
    if "scale" in report:
        scale = report["scale"]
        entries.append((f"VectorIndex {scale['dtype']}\n{scale['size']:,} vectors", scale))
    labels = [label for label, _ in entries]
    colours = [plt.get_cmap("tab10")(number % 10) for number in range(len(entries))]

    figure, (trade_off, build, memory) = plt.subplots(1, 3, figsize=(17, 5.5))
    for (label, row), colour in zip(entries, colours, strict=True):
        p50, p99, recall = row["latency_p50_ms"], row["latency_p99_ms"], row["recall_at_k"]
        trade_off.plot([p50, p99], [recall, recall], color=colour, alpha=0.35, linewidth=3)
        trade_off.scatter([p50], [recall], color=colour, zorder=3, label=label.replace("\n", ", "))
    trade_off.set_xlabel("query latency, ms (dot: p50, bar to p99)")
    trade_off.set_ylabel(f"recall@{k}")
    trade_off.set_title(f"recall@{k} against latency, one query at a time")
    trade_off.grid(alpha=0.3)
    trade_off.legend(fontsize=8)

    positions = np.arange(len(entries))
    threads = report["parameters"]["build_threads"]
    for axis, key, title in (
        (build, "build_seconds", f"build time, s ({threads} threads)"),
        (memory, "memory_added_mib", "memory added (RSS growth), MiB"),
    ):
        bars = axis.barh(positions, [row[key] for _, row in entries], color=colours)
        axis.set_yticks(positions, labels)
        axis.invert_yaxis()
        axis.set_title(title)
        axis.bar_label(bars, fmt="%.1f", padding=2)
        axis.margins(x=0.2)

    sizes = []
    if "compare" in report:
        sizes.append(f"libraries at {report['compare']['size']:,} vectors")
    if "scale" in report:
        sizes.append(f"VectorIndex at {report['scale']['size']:,}")
    dimension = report["parameters"]["dimension"]
    figure.suptitle(f"ANN indexes, dimension {dimension}: " + "; ".join(sizes))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# The command line.


def _library_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in LIBRARIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown libraries {unknown or text!r}; choose from {','.join(LIBRARIES)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.knowledge.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--compare-size", type=int, default=50_000)
    parser.add_argument("--scale-size", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=50_000,
        help="vectors per add call; each chunk has its own seed, so it also decides the data",
    )
    parser.add_argument(
        "--libraries",
        type=_library_list,
        default=LIBRARIES,
        help=f"comma list, default {','.join(LIBRARIES)}",
    )
    parser.add_argument("--skip-compare", action="store_true", help="no library comparison")
    parser.add_argument("--skip-scale", action="store_true", help="no VectorIndex scale run")
    parser.add_argument("--output", type=Path, default=Path("runs/bench/knowledge-index"))
    args = parser.parse_args(argv)
    if args.skip_compare and args.skip_scale:
        parser.error("--skip-compare and --skip-scale together leave nothing to run")
    try:
        config = BenchmarkConfig(
            dimension=args.dimension,
            clusters=args.clusters,
            seed=args.seed,
            queries=args.queries,
            warm_up_queries=min(100, args.queries),
            chunk_size=args.chunk_size,
        )
    except ValueError as exc:
        parser.error(str(exc))

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        report = run_benchmark(
            config,
            args.output,
            compare_size=None if args.skip_compare else args.compare_size,
            scale_size=None if args.skip_scale else args.scale_size,
            libraries=args.libraries,
        )
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(report_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
