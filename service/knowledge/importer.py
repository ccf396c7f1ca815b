"""Bulk import of resolved tickets from an export file into the knowledge base.

Columns are mapped as for training (``service.columns``): ``answer`` is the
resolution, ``tags`` or ``tag_1..tag_N`` the tags, each label head a label, and
``source_id`` and ``created_at`` are read when present. A file without an id
column gets ids derived from the file name and the ticket text, so importing
the same file twice changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from service.columns import DEFAULT_HEADS, ColumnMapping, DataError, cell_text, tag_columns
from service.files import read_rows
from service.knowledge.base import KnowledgeBase
from service.knowledge.records import EntryInput, as_utc
from service.text import clean_text

__all__ = ["ImportSummary", "entries_from_rows", "import_files"]

logger = logging.getLogger(__name__)

# Fields an import reads beyond those of training, with the column names tried by default.
IMPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "source_id": ("source_id", "id", "ticket_id", "number"),
    "created_at": ("created_at", "created", "opened_at"),
    "resolved_at": ("resolved_at", "closed_at", "resolved"),
    "source_system": ("source_system",),
}


@dataclass
class ImportSummary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common()) or "none"
        return (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged; skipped: {skipped}"
        )


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    text = cell_text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return as_utc(parsed)


def _tags(row: Mapping[str, Any], columns: Mapping[str, str]) -> list[str]:
    if "tags" in columns:
        raw = row.get(columns["tags"])
        items = raw if isinstance(raw, list) else cell_text(raw).split(",")
        return [tag for tag in (cell_text(t) for t in items) if tag]
    return [tag for tag in (cell_text(row[key]) for key in tag_columns(row)) if tag]


def entries_from_rows(
    rows: Sequence[Mapping[str, Any]],
    mapping: ColumnMapping,
    origin: str,
    heads: Sequence[str] = DEFAULT_HEADS,
    source_system: str | None = None,
) -> Iterator[EntryInput | str]:
    """An entry per usable row, or the reason a row cannot be used."""
    if not rows:
        return
    mapping = mapping.with_columns(
        {
            name: candidates
            for name, candidates in IMPORT_FIELDS.items()
            if name not in mapping.fields
        }
    )
    columns = mapping.resolve(list(rows[0]))
    if "body" not in columns or "answer" not in columns:
        raise DataError(
            f"{origin}: expected a body column (one of {list(mapping.fields['body'])}) and a "
            f"resolution column (answer: one of {list(mapping.fields['answer'])}), found "
            f"{list(rows[0])}; map them with --column body=NAME --column answer=NAME"
        )
    stem = Path(origin).stem
    for row in rows:
        subject = clean_text(cell_text(row.get(columns.get("subject", ""))))
        body = clean_text(cell_text(row.get(columns["body"])))
        resolution = clean_text(cell_text(row.get(columns["answer"])))
        if not body:
            yield "no body"
            continue
        if not resolution:
            yield "no resolution"
            continue
        labels = {}
        for head in heads:
            raw = cell_text(row.get(columns.get(head, "")))
            label = mapping.values.get(head, {}).get(raw.casefold(), raw)
            if label:
                labels[head] = label
        source_id = cell_text(row.get(columns.get("source_id", "")))
        if not source_id:
            digest = hashlib.sha256(f"{subject}\n{body}".encode()).hexdigest()[:20]
            source_id = f"{stem}:{digest}"
        yield EntryInput(
            source_id=source_id[:255],
            body=body,
            resolution=resolution,
            subject=subject,
            labels=labels,
            tags=_tags(row, columns),
            source_system=(
                source_system or cell_text(row.get(columns.get("source_system", ""))) or stem
            )[:64],
            created_at=_timestamp(row.get(columns.get("created_at", ""))),
            resolved_at=_timestamp(row.get(columns.get("resolved_at", ""))),
        )


def import_files(
    base: KnowledgeBase,
    sources: Sequence[Path],
    mapping: ColumnMapping,
    heads: Sequence[str] = DEFAULT_HEADS,
    source_system: str | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> ImportSummary:
    """Import every usable row; a row whose text repeats an earlier one is skipped."""
    summary = ImportSummary()
    for source in sources:
        rows = read_rows(source)
        summary.rows += len(rows)
        batch: dict[str, EntryInput] = {}
        with tqdm(
            total=len(rows), desc=f"importing {source.name}", unit="ticket", disable=not progress
        ) as bar:
            for item in entries_from_rows(rows, mapping, str(source), heads, source_system):
                bar.update(1)
                if isinstance(item, str):
                    summary.skipped[item] += 1
                elif item.source_id in batch:
                    summary.skipped["repeats an earlier row"] += 1
                else:
                    batch[item.source_id] = item
                if len(batch) >= batch_size:
                    _write(base, list(batch.values()), summary)
                    batch = {}
            if batch:
                _write(base, list(batch.values()), summary)
        logger.info("%s: %s", source, summary.line())
    return summary


def _write(base: KnowledgeBase, entries: list[EntryInput], summary: ImportSummary) -> None:
    for result in base.add(entries):
        setattr(summary, result.status, getattr(summary, result.status) + 1)
