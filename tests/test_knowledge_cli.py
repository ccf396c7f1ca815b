"""``python -m service knowledge ...`` as a user runs it: import, stats, rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from service.columns import ColumnMapping
from service.knowledge.importer import entries_from_rows
from service.knowledge.records import EntryInput
from tests.conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[1]


def knowledge(data_dir: Path, model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with the default embedder: the bundle's retrieval encoder."""
    environment = {
        **os.environ,
        "TRIAGE_DATA_DIR": str(data_dir),
        "TRIAGE_MODEL_DIR": str(model_dir),
        "TRIAGE_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "service", "knowledge", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_import_is_idempotent_and_counted(tmp_path: Path, trained: Path) -> None:
    source = tmp_path / "resolved.csv"
    pd.read_csv(SAMPLE).head(40).to_csv(source, index=False)

    first = knowledge(tmp_path / "data", trained, "import", str(source))
    second = knowledge(tmp_path / "data", trained, "import", str(source))
    stats = knowledge(tmp_path / "data", trained, "stats")

    assert first.returncode == 0, first.stderr
    assert "40 rows: 40 created, 0 updated, 0 unchanged" in first.stdout
    assert "40 rows: 0 created, 0 updated, 40 unchanged" in second.stdout
    described = json.loads(stats.stdout)
    assert described["entries"] == 40 and described["index"]["vectors"] == 40
    assert set(described["languages"]) >= {"en", "de"}


def test_import_reads_columns_through_a_mapping(tmp_path: Path, trained: Path) -> None:
    source = tmp_path / "jira.csv"
    pd.DataFrame(
        {
            "Issue key": ["SD-1", "SD-2"],
            "Summary": ["VPN down", "Invoice twice"],
            "Description": ["The VPN drops every hour.", "I was charged twice."],
            "Resolution details": ["Restarted the VPN gateway.", "Refunded one payment."],
            "Component/s": ["IT Support", "Billing and Payments"],
            "Labels": ["vpn,network", "billing"],
        }
    ).to_csv(source, index=False)

    result = knowledge(
        tmp_path / "data",
        trained,
        "import",
        str(source),
        "--column-mapping",
        str(ROOT / "data" / "mappings" / "jira.yaml"),
        "--column",
        "source_id=Issue key",
    )

    assert result.returncode == 0, result.stderr
    assert "2 rows: 2 created" in result.stdout


def test_import_without_a_resolution_column_exits_2_with_the_fix(
    tmp_path: Path, trained: Path
) -> None:
    source = tmp_path / "no-answers.csv"
    pd.DataFrame({"body": ["text"], "queue": ["IT Support"]}).to_csv(source, index=False)

    result = knowledge(tmp_path / "data", trained, "import", str(source))

    assert result.returncode == 2
    assert "--column answer=NAME" in result.stderr


def test_rebuild_recreates_the_index_from_the_database(tmp_path: Path, trained: Path) -> None:
    source = tmp_path / "resolved.csv"
    pd.read_csv(SAMPLE).head(10).to_csv(source, index=False)
    knowledge(tmp_path / "data", trained, "import", str(source))

    result = knowledge(tmp_path / "data", trained, "rebuild")

    assert result.returncode == 0, result.stderr
    assert "rebuilt the index: 10 vectors" in result.stdout


def test_rows_map_to_entries_with_stable_ids_tags_and_renamed_labels() -> None:
    rows = [
        {
            "subject": "A",
            "body": "Body one",
            "answer": "Fixed",
            "priority": "3 high",
            "tag_2": "b",
            "tag_1": "a",
            "queue": "IT Support",
        },
        {"subject": "B", "body": "Body two", "answer": ""},
    ]
    mapping = ColumnMapping.default().with_values({"priority": {"3 high": "high"}})

    first = list(entries_from_rows(rows, mapping, "export.csv"))
    again = list(entries_from_rows(rows, mapping, "export.csv"))

    entry = first[0]
    assert isinstance(entry, EntryInput)
    assert entry.labels == {"priority": "high", "queue": "IT Support"}
    assert entry.tags == ["a", "b"]
    assert entry.source_id.startswith("export:") and entry == again[0]
    assert first[1] == "no resolution"
