"""Which column of a ticket export feeds which field, shared by training and import.

A mapping comes from a YAML file (``data/mappings/`` has Zammad, OTOBO/Znuny and
Jira examples) or ``--column FIELD=COLUMN`` flags; it only needs PyYAML, so the
serving install can read exports too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_TAG_COLUMN = re.compile(r"tag_(\d+)")

__all__ = [
    "DEFAULT_HEADS",
    "TEXT_FIELDS",
    "ColumnMapping",
    "DataError",
    "cell_text",
    "tag_columns",
]

DEFAULT_HEADS: tuple[str, ...] = ("queue", "priority", "type")
TEXT_FIELDS: tuple[str, ...] = ("subject", "body", "answer", "language", "tags")


class DataError(ValueError):
    """The data cannot be used as given; the message says what to change."""


def cell_text(value: Any) -> str:
    """A cell of an export as text: empty for None or NaN, otherwise stripped."""
    if value is None or value != value:  # NaN is the one value unequal to itself
        return ""
    return str(value).strip()


def tag_columns(names: Iterable[Any]) -> list[str]:
    """The ``tag_1`` … ``tag_N`` columns among ``names``, in number order."""
    numbered = (
        (int(match.group(1)), str(name))
        for name in names
        if (match := _TAG_COLUMN.fullmatch(str(name)))
    )
    return [name for _, name in sorted(numbered)]


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column feeds which field, and how raw label values are renamed.

    Each field names one or more candidate columns; the first one present in a
    file is used, so one mapping can serve exports whose headers differ slightly.
    ``values`` maps, per label head, raw values (matched case-insensitively) to
    the label the model should learn, e.g. ``{"priority": {"3 high": "high"}}``.
    """

    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def default(cls, heads: Sequence[str] = DEFAULT_HEADS) -> ColumnMapping:
        fields = {name: (name,) for name in (*TEXT_FIELDS, *heads)}
        return cls(fields=fields)

    @classmethod
    def from_yaml(cls, path: Path, heads: Sequence[str] = DEFAULT_HEADS) -> ColumnMapping:
        """Read ``columns:`` and ``values:`` from a YAML file (see ``data/mappings/``)."""
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"cannot read column mapping {path}: {exc}") from exc
        if not isinstance(raw, dict) or not set(raw) <= {"columns", "values"}:
            raise DataError(
                f"column mapping {path}: expected a mapping with keys 'columns' and 'values', "
                f"found {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}"
            )
        mapping = cls.default(heads)
        return mapping.with_columns(raw.get("columns") or {}).with_values(raw.get("values") or {})

    def with_columns(self, columns: Mapping[str, str | Sequence[str]]) -> ColumnMapping:
        fields = dict(self.fields)
        for name, source in columns.items():
            candidates = (source,) if isinstance(source, str) else tuple(source)
            if not candidates or not all(isinstance(c, str) and c for c in candidates):
                raise DataError(
                    f"column mapping for {name!r}: expected column names, found {source!r}"
                )
            fields[name] = candidates
        return ColumnMapping(fields=fields, values=self.values)

    def with_values(self, values: Mapping[str, Mapping[Any, Any]]) -> ColumnMapping:
        merged = {head: dict(mapping) for head, mapping in self.values.items()}
        for head, mapping in values.items():
            if not isinstance(mapping, Mapping):
                raise DataError(
                    f"value mapping for {head!r}: expected raw: label pairs, found {mapping!r}"
                )
            merged.setdefault(head, {}).update(
                {str(raw).strip().casefold(): str(label).strip() for raw, label in mapping.items()}
            )
        return ColumnMapping(fields=self.fields, values=merged)

    def with_overrides(self, overrides: Iterable[str]) -> ColumnMapping:
        """Apply ``field=column`` flags from the command line."""
        columns: dict[str, str] = {}
        for item in overrides:
            name, sep, column = item.partition("=")
            if not sep or not name or not column:
                raise DataError(f"--column expects FIELD=COLUMN (e.g. queue=group), found {item!r}")
            columns[name.strip()] = column.strip()
        return self.with_columns(columns)

    def resolve(self, available: Sequence[str]) -> dict[str, str]:
        """Field -> column actually present in a file with these columns."""
        present = set(available)
        resolved = {}
        for name, candidates in self.fields.items():
            column = next((c for c in candidates if c in present), None)
            if column is not None:
                resolved[name] = column
        return resolved
