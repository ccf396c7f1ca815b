"""Command line: ``python -m service serve`` and ``python -m service classify``.

python -m service serve                          # settings from TRIAGE_* variables
python -m service classify tickets.csv -o predictions.csv
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.inference.bundle import BundleError, ModelBundle
from service.settings import Settings, SettingsError

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


def classify_file(settings: Settings, source: Path, output: Path, batch_size: int) -> int:
    """Predict every ticket of a CSV/JSONL/Parquet file and write the rows with predictions."""
    import pandas as pd
    from tqdm.auto import tqdm

    from service.inference.bundle import TriageRuntime
    from service.text import detect_language, ticket_text

    readers = {
        ".csv": pd.read_csv,
        ".jsonl": lambda p: pd.read_json(p, lines=True),
        ".json": pd.read_json,
        ".parquet": pd.read_parquet,
    }
    reader = readers.get(source.suffix.lower())
    if reader is None:
        raise SettingsError(f"{source}: expected a .csv, .json, .jsonl or .parquet file")
    frame = reader(source)
    if "body" not in frame.columns:
        raise SettingsError(f"{source}: expected a 'body' column, found {list(frame.columns)}")

    bundle = ModelBundle.load(settings.model_dir)
    runtime = TriageRuntime(
        bundle,
        settings.model_variant if settings.model_variant in bundle.model_files else "fp32",
        settings.provider,
        settings.threads or None,
    )
    subjects = frame["subject"].fillna("").astype(str) if "subject" in frame else [""] * len(frame)
    texts = [
        ticket_text(s, b, bundle.text_prefix)
        for s, b in zip(subjects, frame["body"].fillna("").astype(str), strict=True)
    ]
    columns: dict[str, list[object]] = {f"predicted_{h}": [] for h in bundle.heads}
    columns.update({f"{h}_probability": [] for h in bundle.heads})
    columns["detected_language"] = []
    for start in tqdm(range(0, len(texts), batch_size), desc="classifying", unit="batch"):
        chunk = texts[start : start + batch_size]
        probabilities = runtime.probabilities(runtime.run(chunk, batch_size).logits)
        for head, values in probabilities.items():
            columns[f"predicted_{head}"].extend(bundle.heads[head][i] for i in values.argmax(1))
            columns[f"{head}_probability"].extend(values.max(1).round(4).tolist())
        columns["detected_language"].extend(
            detect_language(t[len(bundle.text_prefix) :])[0] for t in chunk
        )
    result = frame.assign(**columns)
    writers = {
        ".csv": lambda p: result.to_csv(p, index=False),
        ".jsonl": lambda p: result.to_json(p, orient="records", lines=True, force_ascii=False),
        ".parquet": lambda p: result.to_parquet(p, index=False),
    }
    writer = writers.get(output.suffix.lower())
    if writer is None:
        raise SettingsError(f"{output}: expected a .csv, .jsonl or .parquet output file")
    output.parent.mkdir(parents=True, exist_ok=True)
    writer(output)
    logger.info("wrote %d predictions to %s", len(result), output)
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
