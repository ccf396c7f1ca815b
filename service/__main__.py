"""Command line: ``python -m service serve`` and ``python -m service classify``.

python -m service serve                          # settings from TRIAGE_* variables
python -m service classify tickets.csv -o predictions.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

from service.inference.bundle import BundleError, ModelBundle, TriageRuntime
from service.settings import Settings, SettingsError
from service.text import detect_language, ticket_text

__all__ = ["main"]

logger = logging.getLogger("service")


def serve(settings: Settings) -> int:
    import uvicorn

    from service.api.app import create_app

    ModelBundle.load(settings.model_dir)  # refuse to start on a missing or broken bundle
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )
    return 0


def _read_rows(source: Path) -> list[dict[str, Any]]:
    suffix = source.suffix.lower()
    if suffix == ".csv":
        with source.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if suffix == ".jsonl":
        with source.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if suffix == ".json":
        rows = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise SettingsError(f"{source}: expected a JSON list of tickets")
        return rows
    if suffix == ".parquet":
        return _parquet().read_table(source).to_pylist()
    raise SettingsError(f"{source}: expected a .csv, .json, .jsonl or .parquet file")


def _write_rows(rows: list[dict[str, Any]], output: Path) -> None:
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
        raise SettingsError(f"{output}: expected a .csv, .jsonl or .parquet output file")


def _parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError as exc:
        raise SettingsError("Parquet files need pyarrow: pip install pyarrow") from exc
    return pyarrow.parquet


def classify_file(settings: Settings, source: Path, output: Path, batch_size: int) -> int:
    """Predict every ticket of a CSV/JSON/JSONL/Parquet file; write its rows with predictions."""
    from tqdm.auto import tqdm

    rows = _read_rows(source)
    if rows and "body" not in rows[0]:
        raise SettingsError(f"{source}: expected a 'body' column, found {list(rows[0])}")
    bundle = ModelBundle.load(settings.model_dir)
    variant = settings.model_variant if settings.model_variant in bundle.model_files else "fp32"
    runtime = TriageRuntime(bundle, variant, settings.provider, settings.threads or None)

    for start in tqdm(range(0, len(rows), batch_size), desc="classifying", unit="batch"):
        chunk = rows[start : start + batch_size]
        texts = [
            ticket_text(
                str(row.get("subject") or ""), str(row.get("body") or ""), bundle.text_prefix
            )
            for row in chunk
        ]
        probabilities = runtime.probabilities(runtime.run(texts, batch_size).logits)
        for index, row in enumerate(chunk):
            for head, values in probabilities.items():
                row[f"predicted_{head}"] = bundle.heads[head][int(values[index].argmax())]
                row[f"{head}_probability"] = round(float(values[index].max()), 4)
            row["detected_language"] = detect_language(texts[index][len(bundle.text_prefix) :])[0]
    _write_rows(rows, output)
    logger.info("wrote %d predictions to %s", len(rows), output)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="start the HTTP API")
    serve_parser.add_argument("--model-dir", type=Path, help="overrides TRIAGE_MODEL_DIR")
    serve_parser.add_argument("--host", help="overrides TRIAGE_HOST")
    serve_parser.add_argument("--port", type=int, help="overrides TRIAGE_PORT")
    classify_parser = commands.add_parser("classify", help="classify a file of tickets")
    classify_parser.add_argument("source", type=Path, help="CSV, JSON, JSONL or Parquet")
    classify_parser.add_argument("-o", "--output", type=Path, required=True)
    classify_parser.add_argument("--model-dir", type=Path, help="overrides TRIAGE_MODEL_DIR")
    classify_parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    overrides = {
        k: v for k in ("model_dir", "host", "port") if (v := getattr(args, k, None)) is not None
    }
    try:
        settings = Settings.from_env(**overrides)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if args.command == "serve":
            return serve(settings)
        return classify_file(settings, args.source, args.output, args.batch_size)
    except (SettingsError, BundleError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
