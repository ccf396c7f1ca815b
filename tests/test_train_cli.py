"""The training command answers bad settings with a message and exit code 2, not a trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.train import main

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "tickets.csv"


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed, with the console's line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


def run(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "--data",
            str(SAMPLE),
            "--work-dir",
            str(tmp_path / "runs"),
            "--output-dir",
            str(tmp_path / "models"),
            "--cache-dir",
            str(tmp_path),
            *extra,
        ]
    )


def test_out_of_range_setting_exits_with_2_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "--max-length", "4") == 2
    assert "max_length: expected 8..512, found 4" in printed(capsys)


def test_missing_base_model_folder_exits_with_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "--base-model", str(tmp_path / "no-such-model")) == 2
    assert "expected a model folder" in printed(capsys)


def test_unmapped_label_columns_exit_with_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "--heads", "category") == 2
    assert "none of the label columns ['category']" in printed(capsys)
