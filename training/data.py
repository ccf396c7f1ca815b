"""Ticket data: load any export, map its columns, clean it, deduplicate it and split it.

The steps run in this order because each one protects the next:
labels are normalised before rare labels are counted, junk is dropped before
duplicates are searched, and duplicates are removed *before* the split so that
no ticket can be trained on and then tested on in another guise.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from service.columns import DEFAULT_HEADS, ColumnMapping, DataError, cell_text, tag_columns
from service.text import clean_text, detect_language, ticket_text

__all__ = [
    "DEFAULT_HEADS",
    "ColumnMapping",
    "DataError",
    "PreparedData",
    "clean_tickets",
    "find_duplicate_groups",
    "frame_texts",
    "label_indices",
    "load_tickets",
    "prepare_data",
    "split_tickets",
]

logger = logging.getLogger(__name__)

# Label index of a row without a (known) label; cross-entropy is told to ignore it.
MISSING_LABEL = -100
_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class PreparedData:
    """Cleaned, deduplicated and split tickets with the label sets learned from them."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    labels: dict[str, list[str]]
    statistics: dict[str, Any]

    def splits(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def _load_one(source: str, cache_dir: Path | None) -> pd.DataFrame:
    import datasets

    path = Path(source)
    if path.exists():
        builder = _FORMATS.get(path.suffix.lower())
        if builder is None:
            raise DataError(
                f"{source}: expected a .csv, .tsv, .json, .jsonl or .parquet file, "
                f"found suffix {path.suffix!r}"
            )
        options: dict[str, Any] = {}
        if builder == "csv":
            options = {
                "sep": "\t" if path.suffix.lower() == ".tsv" else ",",
                "keep_default_na": False,
            }
        dataset = datasets.load_dataset(
            builder,
            data_files=str(path),
            split="train",
            cache_dir=str(cache_dir) if cache_dir else None,
            **options,
        )
    else:
        try:
            dataset = datasets.load_dataset(source, split="train")
        except Exception as exc:
            raise DataError(
                f"{source}: no such file, and loading it as a Hugging Face data set id failed "
                f"({type(exc).__name__}: {exc}). Give a path to a CSV/JSON/Parquet export, or "
                "check the data set id and network access."
            ) from exc
    frame = dataset.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    return frame


def load_tickets(
    sources: Sequence[str],
    mapping: ColumnMapping,
    heads: Sequence[str] = DEFAULT_HEADS,
    cache_dir: Path | None = None,
) -> pd.DataFrame:
    """Read every source through ``datasets`` and map it onto the ticket fields.

    The result has the columns ``subject, body, answer, declared_language, tags,
    source`` and one column per label head; absent fields are empty.
    """
    frames = []
    for source in sources:
        raw = _load_one(source, cache_dir)
        columns = mapping.resolve(list(raw.columns))
        if "body" not in columns:
            raise DataError(
                f"{source}: no body column; expected one of {list(mapping.fields['body'])}, "
                f"found columns {list(raw.columns)}. "
                "Map it with --column body=NAME or a mapping file."
            )
        missing_heads = [head for head in heads if head not in columns]
        if len(missing_heads) == len(heads):
            raise DataError(
                f"{source}: none of the label columns {list(heads)} was found in "
                f"{list(raw.columns)}; "
                f"map each with --column {heads[0]}=NAME or a mapping file."
            )
        if missing_heads:
            logger.warning(
                "%s has no column for %s; those labels stay empty", source, missing_heads
            )

        frame = pd.DataFrame(index=raw.index)
        for name in ("subject", "body", "answer"):
            frame[name] = _as_text(raw[columns[name]]) if name in columns else ""
        frame["declared_language"] = (
            _as_text(raw[columns["language"]]) if "language" in columns else ""
        )
        frame["tags"] = _tags(raw, columns)
        for head in heads:
            frame[head] = _as_text(raw[columns[head]]) if head in columns else ""
        frame["source"] = Path(source).name
        frames.append(frame)
        logger.info("loaded %d rows from %s (columns used: %s)", len(frame), source, columns)

    return pd.concat(frames, ignore_index=True)


def _as_text(column: pd.Series) -> pd.Series:
    return column.map(cell_text)


def _tags(raw: pd.DataFrame, columns: Mapping[str, str]) -> pd.Series:
    """Tags from a ``tags`` column (comma separated) or from ``tag_1`` … ``tag_N`` columns."""
    if "tags" in columns:
        return _as_text(raw[columns["tags"]]).map(
            lambda text: ",".join(t.strip() for t in text.split(",") if t.strip())
        )
    numbered = tag_columns(raw.columns)
    if not numbered:
        return pd.Series([""] * len(raw), index=raw.index)
    tags = raw[numbered].apply(lambda col: _as_text(col))
    return tags.apply(lambda row: ",".join(t for t in row if t), axis=1)


def _junk_reason(subject: str, body: str, min_letters: int) -> str | None:
    """Why a ticket text cannot teach anything, or None when it is usable."""
    if not body:
        return "empty body"
    stripped = body.lstrip()
    if stripped[:1] in "{[" and re.search(r"""["']\s*:\s*""", stripped[:400]):
        return "structured data (JSON or dict text) instead of a message"
    text = f"{subject} {body}"
    letters = sum(ch.isalpha() for ch in text)
    if letters < min_letters:
        return f"fewer than {min_letters} letters"
    if letters / max(len(text), 1) < 0.4:
        return "mostly symbols or digits"
    return None


def _normalise_labels(
    values: pd.Series, renames: Mapping[str, str]
) -> tuple[pd.Series, dict[str, int]]:
    """Apply renames, then merge spellings that differ only in case and spacing.

    Each merged group takes its most frequent spelling. Returns the labels and
    how many rows were changed by each rule.
    """
    cleaned = values.map(lambda v: re.sub(r"\s+", " ", v).strip())
    renamed = cleaned.map(lambda v: renames.get(v.casefold(), v) if v else v)
    counts = Counter(v for v in renamed if v)
    canonical: dict[str, str] = {}
    for label, _ in counts.most_common():
        canonical.setdefault(label.casefold(), label)
    normalised = renamed.map(lambda v: canonical.get(v.casefold(), v) if v else v)
    changes = {
        "renamed": int((renamed != cleaned).sum()),
        "case_or_spacing_merged": int((normalised != renamed).sum()),
    }
    return normalised, changes


def clean_tickets(
    frame: pd.DataFrame,
    mapping: ColumnMapping,
    heads: Sequence[str] = DEFAULT_HEADS,
    min_letters: int = 10,
    min_label_count: int = 5,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Normalise text and labels, drop unusable rows, detect each ticket's language."""
    report: dict[str, Any] = {"rows_loaded": len(frame), "dropped": {}, "labels": {}}
    frame = frame.copy()
    frame["subject"] = frame["subject"].map(clean_text)
    frame["body"] = frame["body"].map(clean_text)
    frame["answer"] = frame["answer"].map(clean_text)

    # Junk first: a junk row's label must not count towards the label statistics.
    reasons = [
        _junk_reason(s, b, min_letters)
        for s, b in zip(frame["subject"], frame["body"], strict=True)
    ]
    frame["_drop"] = reasons
    report["dropped"].update(Counter(r for r in reasons if r))
    frame = frame[frame["_drop"].isna()].drop(columns="_drop")

    for head in heads:
        frame[head], changes = _normalise_labels(frame[head], mapping.values.get(head, {}))
        counts = Counter(v for v in frame[head] if v)
        rare = sorted(label for label, n in counts.items() if n < min_label_count)
        if rare:
            logger.warning(
                "%s: labels with fewer than %d tickets are left out: %s",
                head,
                min_label_count,
                rare,
            )
            frame.loc[frame[head].isin(rare), head] = ""
        report["labels"][head] = {
            **changes,
            "rare_labels_removed": rare,
            "missing": int((frame[head] == "").sum()),
        }

    no_label = (frame[list(heads)] == "").all(axis=1)
    if no_label.any():
        report["dropped"]["no label for any head"] = int(no_label.sum())
    frame = frame[~no_label]

    detected = [
        detect_language(f"{s}\n{b}")
        for s, b in tqdm(
            zip(frame["subject"], frame["body"], strict=True),
            total=len(frame),
            desc="detecting languages",
            unit="ticket",
            leave=False,
        )
    ]
    frame["language"] = [language for language, _ in detected]
    declared = frame["declared_language"].str.lower().str[:2]
    known = declared != ""
    report["language_disagrees_with_declared"] = int(
        (known & (declared != frame["language"])).sum()
    )
    report["rows_kept"] = len(frame)
    return frame.reset_index(drop=True), report


def _exact_key(subject: str, body: str) -> str:
    return " ".join(_WORD.findall(body.casefold())) or " ".join(_WORD.findall(subject.casefold()))


def find_duplicate_groups(
    texts: Sequence[str], threshold: float = 0.7, chunk_size: int = 1024
) -> np.ndarray:
    """Group id per text; texts whose word-bigram TF-IDF cosine is at least ``threshold``
    share a group (transitively)."""
    n = len(texts)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    if n > 1:
        vectors = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit_transform(
            texts
        )
        vectors = sparse.csr_matrix(vectors)
        for start in tqdm(
            range(0, n, chunk_size), desc="near duplicates", unit="chunk", leave=False
        ):
            block = (vectors[start : start + chunk_size] @ vectors.T).tocoo()
            rows, cols, sims = block.row + start, block.col, block.data
            close = (sims >= threshold) & (cols > rows)
            for i, j in zip(rows[close], cols[close], strict=True):
                root_i, root_j = find(int(i)), find(int(j))
                if root_i != root_j:
                    parent[max(root_i, root_j)] = min(root_i, root_j)
    return np.array([find(i) for i in range(n)])


def deduplicate(
    frame: pd.DataFrame, heads: Sequence[str], threshold: float = 0.7
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Keep one ticket per group of exact or near duplicates."""
    keys = [_exact_key(s, b) for s, b in zip(frame["subject"], frame["body"], strict=True)]
    exact = pd.Series(keys).duplicated().to_numpy()
    unique = frame[~exact].reset_index(drop=True)

    texts = (unique["subject"] + "\n" + unique["body"]).tolist()
    groups = find_duplicate_groups(texts, threshold)
    near = pd.Series(groups).duplicated().to_numpy()
    conflicting = 0
    for _, members in unique.groupby(groups):
        if len(members) > 1 and any(members[h].nunique() > 1 for h in heads):
            conflicting += 1
    kept = unique[~near].reset_index(drop=True)
    kept["duplicate_group"] = np.arange(len(kept))
    report: dict[str, float] = {
        "exact_duplicates_removed": int(exact.sum()),
        "near_duplicates_removed": int(near.sum()),
        "duplicate_groups_with_conflicting_labels": conflicting,
        "near_duplicate_threshold": threshold,
    }
    return kept, report


def _strata(frame: pd.DataFrame, heads: Sequence[str], minimum: int) -> pd.Series:
    """Stratum per row: first head's label and language, coarsened where a stratum is too small."""
    head = heads[0]
    fine = frame[head] + "|" + frame["language"]
    coarse = frame[head]
    strata = fine.where(fine.map(fine.value_counts()) >= minimum, coarse)
    return strata.where(strata.map(strata.value_counts()) >= minimum, "(rare)")


def split_tickets(
    frame: pd.DataFrame,
    heads: Sequence[str],
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation/test split (by first head's label and language)."""
    if not 0 < validation_fraction < 0.5 or not 0 < test_fraction < 0.5:
        raise DataError(
            f"validation and test fractions must each lie in (0, 0.5), found "
            f"{validation_fraction} and {test_fraction}"
        )
    minimum = max(3, int(np.ceil(2 / min(validation_fraction, test_fraction))))
    strata = _strata(frame, heads, minimum)
    rest, test = train_test_split(
        frame, test_size=test_fraction, random_state=seed, stratify=strata
    )
    relative = validation_fraction / (1 - test_fraction)
    train, validation = train_test_split(
        rest, test_size=relative, random_state=seed, stratify=strata.loc[rest.index]
    )
    return (
        train.reset_index(drop=True),
        validation.reset_index(drop=True),
        test.reset_index(drop=True),
    )


def _distribution(frame: pd.DataFrame, column: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame[column].value_counts().sort_index().items() if k}


def prepare_data(
    sources: Sequence[str],
    mapping: ColumnMapping,
    heads: Sequence[str] = DEFAULT_HEADS,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.15,
    seed: int = 13,
    near_duplicate_threshold: float = 0.7,
    min_label_count: int = 5,
    cache_dir: Path | None = None,
    feedback: pd.DataFrame | None = None,
) -> PreparedData:
    """The whole data chain: load, clean, deduplicate, split, and count.

    ``feedback`` (from ``training.feedback.feedback_frame``) goes first, so that its labels
    win over an export's copy of the same ticket.
    """
    loaded = load_tickets(sources, mapping, heads, cache_dir)
    feedback_rows = 0 if feedback is None else len(feedback)
    if feedback_rows:
        loaded = pd.concat([feedback, loaded], ignore_index=True)
        logger.info("added %d tickets with agents' feedback before the files", feedback_rows)
    cleaned, cleaning = clean_tickets(loaded, mapping, heads, min_label_count=min_label_count)
    unique, duplicates = deduplicate(cleaned, heads, near_duplicate_threshold)
    if len(unique) < 20:
        raise DataError(
            f"only {len(unique)} usable tickets remain after cleaning; at least 20 needed"
        )
    train, validation, test = split_tickets(unique, heads, validation_fraction, test_fraction, seed)

    labels = {head: sorted(v for v in unique[head].unique() if v) for head in heads}
    for head, values in labels.items():
        if len(values) < 2:
            raise DataError(f"head {head!r} needs at least 2 labels, found {values}")
    splits = {"train": train, "validation": validation, "test": test}
    statistics = {
        "sources": list(sources),
        "feedback_rows": feedback_rows,
        "cleaning": cleaning,
        "deduplication": duplicates,
        "split_sizes": {name: len(part) for name, part in splits.items()},
        "labels": labels,
        "distribution": {
            name: {column: _distribution(part, column) for column in (*heads, "language")}
            for name, part in splits.items()
        },
    }
    return PreparedData(
        train=train, validation=validation, test=test, labels=labels, statistics=statistics
    )


def frame_texts(frame: pd.DataFrame, prefix: str) -> list[str]:
    """Each row's model input: ``prefix`` + subject + newline + body."""
    return [ticket_text(s, b, prefix) for s, b in zip(frame["subject"], frame["body"], strict=True)]


def label_indices(frame: pd.DataFrame, head: str, labels: Sequence[str]) -> np.ndarray:
    """Index of each row's label of ``head`` in ``labels``; ``MISSING_LABEL`` where unknown."""
    position = {name: i for i, name in enumerate(labels)}
    return np.array([position.get(v, MISSING_LABEL) for v in frame[head]], dtype=np.int64)


def save_statistics(statistics: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(statistics, indent=2, ensure_ascii=False), encoding="utf-8")
