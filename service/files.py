"""Reading and writing ticket files: CSV, TSV, JSON (a list), JSON Lines and Parquet.

Only the standard library is needed, and pyarrow for Parquet.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["FileFormatError", "read_rows", "write_json", "write_rows"]


class FileFormatError(ValueError):
    """A file's format is not one of those supported, or its content is not rows."""


def write_json(path: Path, payload: Any) -> None:
    """Indented UTF-8 JSON, its folder created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_rows(source: Path) -> list[dict[str, Any]]:
    """Every row of a file as a dict of column -> value."""
    suffix = source.suffix.lower()
    if suffix not in (".csv", ".tsv", ".json", ".jsonl", ".parquet"):
        raise FileFormatError(
            f"{source}: expected a .csv, .tsv, .json, .jsonl or .parquet file, "
            f"found suffix {suffix!r}"
        )
    if not source.is_file():
        raise FileFormatError(f"{source}: no such file")
    try:
        if suffix in (".csv", ".tsv"):
            with source.open(newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
        if suffix == ".jsonl":
            with source.open(encoding="utf-8") as handle:
                return [json.loads(line) for line in handle if line.strip()]
        if suffix == ".json":
            rows = json.loads(source.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise FileFormatError(f"{source}: expected a JSON list of tickets")
            return rows
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise FileFormatError(f"{source}: not readable as UTF-8 {suffix[1:]}: {exc}") from exc
    return _parquet().read_table(source).to_pylist()


def write_rows(rows: list[dict[str, Any]], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    suffix = output.suffix.lower()
    if suffix == ".csv":
        with output.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".jsonl":
        with output.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    elif suffix == ".parquet":
        import pyarrow as pa

        _parquet().write_table(pa.Table.from_pylist(rows), output)
    else:
        raise FileFormatError(f"{output}: expected a .csv, .jsonl or .parquet output file")


def _parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError as exc:
        raise FileFormatError("Parquet files need pyarrow: pip install pyarrow") from exc
    return pyarrow.parquet
