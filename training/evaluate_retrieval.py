"""Retrieval evaluation: which embedding and which method find the most useful past tickets.

    python -m training.evaluate_retrieval --model onnx_models/ticket-triage --output DIR

The bundle's own split is rebuilt from its ``train_config.json`` (same files,
same seed, so the same deduplicated split): its training split, with answers,
is the knowledge base, and its test split the queries, tickets the knowledge
base has never seen. Compared side by side on that split:

- dense retrieval with each embedder the service offers: the bundle's fine-tuned
  embedding (``bundle``), its retrieval encoder, the base multilingual-e5-small
  before fine-tuning as served in INT8 (``base``; a bundle without one gets it with
  ``python -m training.export --model DIR``), and the multilingual Universal
  Sentence Encoder (``use``);
- BM25 over words (``bm25s``);
- a hybrid of each dense method with BM25 (reciprocal-rank fusion).

Per method, for the top ``k`` suggestions: the share with the query's queue
(same-queue precision@k), the mean Jaccard overlap of their tags with the
query's tags (tag overlap@k, on queries that have tags), and the similarity of
the top suggestion's resolution to the query's real answer, as the share of the
gap it closes between a random suggestion and the best answer the knowledge base
holds for that query. Three judges score that similarity, so that no embedder is
judged only by itself: base multilingual-e5-small and the Universal Sentence
Encoder (cosine of the answers' embeddings), and word TF-IDF (uni- and bigrams;
same-language run only, since words do not match across languages). Methods are
ranked by the mean of the judges.

A cross-lingual run then keeps only the English tickets in the knowledge base
and asks with the German, Spanish, French and Portuguese test tickets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from tqdm.auto import tqdm

from service.columns import ColumnMapping, DataError
from service.files import write_json
from service.inference.bundle import BundleError, ModelBundle, TriageRuntime
from service.knowledge.embedders import (
    BaseEncoderEmbedder,
    BundleEmbedder,
    Embedder,
    UniversalSentenceEncoder,
    unit_rows,
)
from service.text import QUERY_PREFIX, ticket_text
from training.base_model import resolve_base_model
from training.data import prepare_data

__all__ = [
    "RetrievalScores",
    "answer_gap_closed",
    "main",
    "queue_precision",
    "reciprocal_rank_fusion",
    "tag_overlap",
    "verdict",
]

logger = logging.getLogger(__name__)

CROSS_LINGUAL_QUERY_LANGUAGES = ("de", "es", "fr", "pt")
CROSS_LINGUAL_JUDGES = ("e5-base", "use")
RRF_K = 60
EMBEDDERS = ("bundle", "base", "use")
CANDIDATES = 50


# Metrics: each takes, per query, the ranked knowledge-base rows it got.


def queue_precision(
    ranked: np.ndarray, query_queues: Sequence[str], base_queues: Sequence[str], k: int
) -> float:
    """Mean share of the top ``k`` suggestions whose queue is the query's."""
    base = np.asarray(base_queues, dtype=object)
    hits = [
        np.mean(base[row[:k]] == queue) for row, queue in zip(ranked, query_queues, strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def _jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    union = first | second
    return len(first & second) / len(union) if union else 0.0


def tag_overlap(
    ranked: np.ndarray,
    query_tags: Sequence[frozenset[str]],
    base_tags: Sequence[frozenset[str]],
    k: int,
) -> tuple[float, int]:
    """Mean Jaccard overlap of tags over the top ``k``, on queries with tags; and their count."""
    scores = [
        float(np.mean([_jaccard(tags, base_tags[i]) for i in row[:k]]))
        for row, tags in zip(ranked, query_tags, strict=True)
        if tags
    ]
    return (float(np.mean(scores)) if scores else float("nan")), len(scores)


def answer_gap_closed(top: np.ndarray, random: np.ndarray, best: np.ndarray) -> float:
    """How much of the way from a random suggestion to the best one the top ones went."""
    gap = best - random
    usable = gap > 1e-6
    return float(np.mean((top[usable] - random[usable]) / gap[usable])) if usable.any() else 0.0


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray], depth: int, k: int = RRF_K
) -> np.ndarray:
    """Fuse per-query rankings (each (Q, N) of row ids) into one (Q, depth) ranking."""
    fused = []
    for rows in zip(*rankings, strict=True):
        score: dict[int, float] = {}
        for row in rows:
            for rank, item in enumerate(row):
                score[int(item)] = score.get(int(item), 0.0) + 1.0 / (k + rank + 1)
        fused.append(sorted(score, key=lambda item: -score[item])[:depth])
    return np.asarray(fused, dtype=np.int64)


@dataclass
class RetrievalScores:
    queue_precision: float
    tag_overlap: float
    tagged_queries: int
    #: Mean over the judges of the answer gap closed, and each judge's figure.
    answer_gap_closed: float
    gap_closed_by_judge: dict[str, float]
    queries: int

    def as_json(self) -> dict[str, Any]:
        def rounded(value: Any) -> Any:
            if isinstance(value, float):
                return round(value, 4)
            if isinstance(value, dict):
                return {key: rounded(item) for key, item in value.items()}
            return value

        return {key: rounded(value) for key, value in vars(self).items()}


#: A judge of answers: the queries' answers and the knowledge base's, as rows whose dot
#: products are similarities (dense unit vectors, or L2-normalised sparse TF-IDF rows).
Judge = tuple[Any, Any]


# Embeddings, cached by a digest of the texts so that re-runs skip the slow part.


Embed = Callable[[Sequence[str]], np.ndarray]


def _cached(
    folder: Path, name: str, texts: Sequence[str], make_embedder: Callable[[], Embed]
) -> tuple[np.ndarray, float]:
    """Vectors of ``texts`` and the seconds they took; the embedder is loaded only if needed."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    path = folder / f"{name}-{digest}.npy"
    timing = folder / f"{name}-{digest}.seconds"
    if path.is_file() and timing.is_file():
        return np.load(path), float(timing.read_text())
    embed = make_embedder()
    started = time.perf_counter()
    vectors = embed(texts)
    seconds = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    timing.write_text(f"{seconds:.3f}")
    return vectors, seconds


def service_embedder(name: str, encoder: Embedder) -> Embed:
    """One of the service's embedders, exactly as the service runs it."""

    def embed(texts: Sequence[str]) -> np.ndarray:
        parts = []
        for start in tqdm(range(0, len(texts), 256), desc=f"{name} embedding", unit="chunk"):
            chunk = list(texts[start : start + 256])
            parts.append(encoder.embed([None] * len(chunk), chunk))
        return np.concatenate(parts)

    return embed


def e5_embedder(max_length: int) -> Embed:
    """Base multilingual-e5-small, mean-pooled, as its authors use it."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = resolve_base_model("multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()

    def embed(texts: Sequence[str]) -> np.ndarray:
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), model.config.hidden_size), np.float32)
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), 32), desc="e5 embedding", unit="batch"):
                chunk = order[start : start + 32]
                batch = tokenizer(
                    [texts[i] for i in chunk],
                    max_length=max_length,
                    truncation=True,
                    padding=True,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out[chunk] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
        return unit_rows(out)

    return embed


# Rankings.


def dense_ranking(queries: np.ndarray, base: np.ndarray, depth: int) -> np.ndarray:
    similarities = queries @ base.T  # (Q, N)
    top = np.argpartition(-similarities, depth - 1, axis=1)[:, :depth]
    order = np.take_along_axis(similarities, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def bm25_ranking(query_texts: Sequence[str], base_texts: Sequence[str], depth: int) -> np.ndarray:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(base_texts), stopwords=None, show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(list(query_texts), stopwords=None, show_progress=False)
    found, _ = retriever.retrieve(tokens, k=depth, show_progress=False)
    return np.asarray(found, dtype=np.int64)


def _similarities(judge: Judge) -> np.ndarray:
    query_answers, base_answers = judge
    every = query_answers @ base_answers.T
    return np.asarray(every.toarray() if hasattr(every, "toarray") else every)


def score_ranking(
    ranked: np.ndarray,
    queries: pd.DataFrame,
    base: pd.DataFrame,
    judges: Mapping[str, np.ndarray],
    k: int,
) -> RetrievalScores:
    """``judges`` holds, per judge, the (queries, knowledge base) answer similarities."""
    gaps = {}
    for name, every in judges.items():
        top = every[np.arange(len(ranked)), ranked[:, 0]]
        gaps[name] = answer_gap_closed(top, every.mean(axis=1), every.max(axis=1))
    overlap, tagged = tag_overlap(ranked, list(queries["tag_set"]), list(base["tag_set"]), k)
    return RetrievalScores(
        queue_precision=queue_precision(ranked, list(queries["queue"]), list(base["queue"]), k),
        tag_overlap=overlap,
        tagged_queries=tagged,
        answer_gap_closed=float(np.mean(list(gaps.values()))),
        gap_closed_by_judge=gaps,
        queries=len(queries),
    )


def run_methods(
    queries: pd.DataFrame,
    base: pd.DataFrame,
    dense: Mapping[str, tuple[np.ndarray, np.ndarray]],
    answers: Mapping[str, Judge],
    k: int,
) -> dict[str, RetrievalScores]:
    """Every method on one knowledge base / query set; ``dense`` holds (queries, base) vectors."""
    judges = {name: _similarities(judge) for name, judge in answers.items()}
    depth = min(CANDIDATES, len(base))
    lexical = bm25_ranking(list(queries["text"]), list(base["text"]), depth)
    scores = {"bm25": score_ranking(lexical, queries, base, judges, k)}
    for name, (query_vectors, base_vectors) in dense.items():
        ranked = dense_ranking(query_vectors, base_vectors, depth)
        scores[f"dense {name}"] = score_ranking(ranked, queries, base, judges, k)
        fused = reciprocal_rank_fusion([ranked, lexical], depth)
        scores[f"hybrid {name} + bm25"] = score_ranking(fused, queries, base, judges, k)
    return scores


# The run.


def _frames(bundle: ModelBundle, cache_dir: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    config_path = bundle.directory / "train_config.json"
    if not config_path.is_file():
        raise DataError(
            f"{bundle.directory}: no train_config.json; is this a bundle of `make train`?"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    heads = list(config["heads"])
    mapping = (
        ColumnMapping.from_yaml(Path(config["column_mapping"]), heads)
        if config.get("column_mapping")
        else ColumnMapping.default(heads)
    ).with_overrides(config.get("columns") or [])
    prepared = prepare_data(
        config["data"],
        mapping,
        heads,
        validation_fraction=config["validation_fraction"],
        test_fraction=config["test_fraction"],
        seed=config["seed"],
        near_duplicate_threshold=config["near_duplicate_threshold"],
        min_label_count=config["min_label_count"],
        cache_dir=cache_dir,
    )
    frames = []
    for frame in (prepared.train, prepared.test):
        frame = frame[frame["answer"].str.strip() != ""].reset_index(drop=True)
        frame["text"] = [
            ticket_text(s, b, "") for s, b in zip(frame["subject"], frame["body"], strict=True)
        ]
        frame["tag_set"] = [frozenset(t for t in tags.split(",") if t) for tags in frame["tags"]]
        frames.append(frame)
    return frames[0], frames[1]


def evaluate_retrieval(
    model_dir: Path,
    output: Path,
    k: int = 5,
    limit_queries: int | None = None,
    limit_knowledge: int | None = None,
    cache_dir: Path | None = None,
    console: Console | None = None,
    embedders: Sequence[str] = EMBEDDERS,
) -> dict[str, Any]:
    console = console or Console()
    unknown = sorted(set(embedders) - set(EMBEDDERS))
    if unknown or not embedders:
        raise DataError(f"embedders: expected some of {', '.join(EMBEDDERS)}; got {unknown}")
    bundle = ModelBundle.load(model_dir)
    base, queries = _frames(bundle, cache_dir)
    split_sizes = {"train": len(base), "test": len(queries)}
    if limit_knowledge:
        base = base.sample(n=min(limit_knowledge, len(base)), random_state=0).reset_index(drop=True)
    if limit_queries:
        queries = queries.sample(n=min(limit_queries, len(queries)), random_state=0).reset_index(
            drop=True
        )
    console.print(
        f"knowledge base: {len(base)} training tickets with answers; queries: "
        f"{len(queries)} test tickets"
    )

    # Embeddings of tickets (each chosen model) and of answers (the judge).
    cache = output / "cache"
    texts = list(base["text"]) + list(queries["text"])
    makers: dict[str, tuple[Callable[[], Embed], str]] = {
        "bundle": (
            lambda: service_embedder(
                "bundle", BundleEmbedder(TriageRuntime(bundle, "fp32", "cpu"))
            ),
            "",
        ),
        "base": (lambda: service_embedder("base", BaseEncoderEmbedder(bundle, "cpu")), ""),
        "use": (lambda: service_embedder("USE", UniversalSentenceEncoder()), ""),
    }
    dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    speed: dict[str, float] = {}
    for name in embedders:
        make, prefix = makers[name]
        vectors, seconds = _cached(cache, name, [prefix + t for t in texts], make)
        dense[name] = (vectors[len(base) :], vectors[: len(base)])
        speed[name] = round(len(texts) / seconds, 1)
    answer_texts = list(base["answer"]) + list(queries["answer"])
    e5_answers, _ = _cached(
        cache, "answers-e5-base", [QUERY_PREFIX + a for a in answer_texts], lambda: e5_embedder(128)
    )
    use_answers, _ = _cached(
        cache,
        "answers-use",
        answer_texts,
        lambda: service_embedder("USE", UniversalSentenceEncoder()),
    )
    tfidf_answers = normalize(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit_transform(answer_texts)
    )
    answers: dict[str, Judge] = {
        name: (vectors[len(base) :], vectors[: len(base)])
        for name, vectors in (
            ("e5-base", e5_answers),
            ("use", use_answers),
            ("tf-idf", tfidf_answers),
        )
    }

    results: dict[str, Any] = {
        "bundle": {"name": bundle.name, "version": bundle.version},
        "k": k,
        "knowledge_base": len(base),
        "queries": len(queries),
        "split_sizes": split_sizes,
        "embedding_tickets_per_second": speed,
        "same_language": {},
        "cross_lingual": {},
    }
    scores = run_methods(queries, base, dense, answers, k)
    results["same_language"] = {name: s.as_json() for name, s in scores.items()}

    # Cross-lingual: English knowledge base, questions in other languages.
    english = np.flatnonzero(base["language"].to_numpy() == "en")
    for language in CROSS_LINGUAL_QUERY_LANGUAGES:
        asked = np.flatnonzero(queries["language"].to_numpy() == language)
        if len(asked) == 0:
            continue
        subset = {name: (q[asked], b[english]) for name, (q, b) in dense.items()}
        cross = run_methods(
            queries.iloc[asked].reset_index(drop=True),
            base.iloc[english].reset_index(drop=True),
            subset,
            {
                name: (judge[0][asked], judge[1][english])
                for name, judge in answers.items()
                if name in CROSS_LINGUAL_JUDGES
            },
            k,
        )
        results["cross_lingual"][language] = {name: s.as_json() for name, s in cross.items()}
    results["cross_lingual_knowledge_base"] = len(english)
    results["verdict"] = verdict(results)

    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "metrics.json", results)
    (output / "report.md").write_text(report_markdown(results), encoding="utf-8")
    plot_results(results, output / "retrieval.png")
    _print_table(results, console)
    return results


def _cross_mean(results: Mapping[str, Any], method: str, metric: str) -> float:
    values = [per[method][metric] for per in results["cross_lingual"].values()]
    return float(np.mean(values)) if values else float("nan")


def verdict(results: Mapping[str, Any]) -> dict[str, Any]:
    """The best method by answer gap closed, and per embedder whether the hybrid earns its keep.

    A hybrid wins only when it closes more of the answer gap than its dense method both on
    the same-language run and, averaged over languages, on the cross-lingual run.
    """
    same = results["same_language"]

    def overall(method: str) -> float:
        cross = _cross_mean(results, method, "answer_gap_closed")
        own = same[method]["answer_gap_closed"]
        return own if np.isnan(cross) else (own + cross) / 2

    hybrid_wins = {}
    for method in same:
        if not method.startswith("dense "):
            continue
        name = method.removeprefix("dense ")
        hybrid = f"hybrid {name} + bm25"
        own_better = same[hybrid]["answer_gap_closed"] > same[method]["answer_gap_closed"]
        cross_hybrid = _cross_mean(results, hybrid, "answer_gap_closed")
        cross_dense = _cross_mean(results, method, "answer_gap_closed")
        cross_better = np.isnan(cross_dense) or cross_hybrid > cross_dense
        hybrid_wins[name] = bool(own_better and cross_better)
    best = max(same, key=overall)
    return {
        "best": best,
        "best_score": round(overall(best), 4),
        "best_beats_bm25": best != "bm25" and overall(best) > overall("bm25"),
        "hybrid_wins": hybrid_wins,
    }


def report_markdown(results: Mapping[str, Any]) -> str:
    k = results["k"]
    judges = list(next(iter(results["same_language"].values()))["gap_closed_by_judge"])
    lines = [
        f"# Retrieval evaluation: {results['bundle']['name']} {results['bundle']['version']}",
        "",
        f"Knowledge base: {results['knowledge_base']} of the {results['split_sizes']['train']} "
        f"training-split tickets with answers; queries: {results['queries']} of the "
        f"{results['split_sizes']['test']} test-split tickets (never in the knowledge base; "
        "samples drawn at random with seed 0 when smaller). "
        f"k = {k}. *Gap closed*: how far the top suggestion's resolution went from a random "
        "suggestion's towards the best answer in the knowledge base, by the similarity of "
        "answers to the query's real one, as judged by each judge (e5-base and USE: cosine of "
        "embeddings; tf-idf: word uni+bigrams), and their mean.",
        "",
        f"| method | same-queue P@{k} | tag overlap@{k} | gap closed | "
        + " | ".join(f"by {judge}" for judge in judges)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(judges),
    ]
    for name, s in results["same_language"].items():
        lines.append(
            f"| {name} | {s['queue_precision']:.3f} | {s['tag_overlap']:.3f} | "
            f"{s['answer_gap_closed']:.3f} | "
            + " | ".join(f"{s['gap_closed_by_judge'][judge]:.3f}" for judge in judges)
            + " |"
        )
    lines += [
        "",
        f"## Cross-lingual: {results['cross_lingual_knowledge_base']} English tickets in the "
        "knowledge base, queries in other languages",
        "",
        f"Same-queue P@{k} / gap closed (mean of the {' and '.join(CROSS_LINGUAL_JUDGES)} judges).",
        "",
        "| method | "
        + " | ".join(f"{lang} P@{k} / gap" for lang in results["cross_lingual"])
        + " |",
        "|---|" + "---:|" * len(results["cross_lingual"]),
    ]
    for name in results["same_language"]:
        cells = [
            f"{per[name]['queue_precision']:.3f} / {per[name]['answer_gap_closed']:.3f}"
            for per in results["cross_lingual"].values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = ", ".join(
        f"{lang} {next(iter(per.values()))['queries']}"
        for lang, per in results["cross_lingual"].items()
    )
    lines += [
        "",
        f"Queries per language: {counts}.",
        "",
        "**Verdict** (answer gap closed, mean of the same-language and cross-lingual runs): "
        f"best method `{results['verdict']['best']}` ({results['verdict']['best_score']:.3f}); "
        "a hybrid beats its dense method on both runs for: "
        + (", ".join(n for n, won in results["verdict"]["hybrid_wins"].items() if won) or "none")
        + ".",
        "",
        "Embedding speed on this machine (tickets per second, knowledge base and queries): "
        + ", ".join(f"{n} {v}" for n, v in results["embedding_tickets_per_second"].items())
        + ".",
        "",
        "![retrieval](retrieval.png)",
        "",
    ]
    return "\n".join(lines)


def plot_results(results: Mapping[str, Any], path: Path) -> None:
    methods = list(results["same_language"])
    k = results["k"]
    figure, axes = plt.subplots(1, 4, figsize=(21, 5.5))
    panels = [
        (
            "same language: same-queue P@k",
            [results["same_language"][m]["queue_precision"] for m in methods],
        ),
        (
            "same language: answer gap closed",
            [results["same_language"][m]["answer_gap_closed"] for m in methods],
        ),
        (
            "cross-lingual (EN base): same-queue P@k",
            [_cross_mean(results, m, "queue_precision") for m in methods],
        ),
        (
            "cross-lingual (EN base): answer gap closed",
            [_cross_mean(results, m, "answer_gap_closed") for m in methods],
        ),
    ]
    for axis, (title, values) in zip(axes, panels, strict=True):
        positions = np.arange(len(methods))
        bars = axis.barh(
            positions,
            values,
            color=[
                "#888" if m == "bm25" else "#3b75af" if m.startswith("dense") else "#e08a3c"
                for m in methods
            ],
        )
        axis.set_yticks(positions, methods)
        axis.invert_yaxis()
        axis.set_title(title.replace("@k", f"@{k}"))
        axis.bar_label(bars, fmt="%.3f", padding=2)
        axis.set_xlim(0, max(max(values) * 1.2, 0.01))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _print_table(results: Mapping[str, Any], console: Console) -> None:
    table = Table(title=f"retrieval, k = {results['k']}")
    for column in ("method", "queue P@k", "tags@k", "gap closed", "x-lingual P@k", "x-lingual gap"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, s in results["same_language"].items():
        table.add_row(
            name,
            f"{s['queue_precision']:.3f}",
            f"{s['tag_overlap']:.3f}",
            f"{s['answer_gap_closed']:.3f}",
            f"{_cross_mean(results, name, 'queue_precision'):.3f}",
            f"{_cross_mean(results, name, 'answer_gap_closed'):.3f}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate_retrieval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="bundle folder of `make train`")
    parser.add_argument("--output", type=Path, default=Path("runs/retrieval"))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--limit-queries", type=int, help="score a random sample of the test split")
    parser.add_argument(
        "--limit-knowledge",
        type=int,
        help="a random sample of the training split as knowledge base",
    )
    parser.add_argument(
        "--embedders",
        nargs="+",
        choices=EMBEDDERS,
        default=list(EMBEDDERS),
        help="dense embedders to compare (default: all)",
    )
    parser.add_argument("--cache-dir", type=Path, help="data set cache (as for training)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        evaluate_retrieval(
            args.model,
            args.output,
            args.k,
            args.limit_queries,
            args.limit_knowledge,
            args.cache_dir,
            embedders=args.embedders,
        )
    except (BundleError, DataError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
