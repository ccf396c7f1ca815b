"""A short soak run on the tiny bundle: the tool drives the real server and reports."""

from __future__ import annotations

import json
from pathlib import Path

from service.soak import Samples, SoakConfig, memory_verdict, run_soak


def test_a_short_soak_sends_every_kind_and_reports_no_errors(
    trained: Path, tmp_path: Path
) -> None:
    report = run_soak(SoakConfig(trained, tmp_path, duration_s=8, rate=12, seed=1))

    assert report["errors"] == 0, report["unexpected_statuses"]
    assert report["requests"] == 96 and report["server_alive_at_end"]
    assert {"classify", "no key", "oversized body", "wrong scope"} <= set(report["kinds"])
    assert len(report["memory_samples"]["rss_mib"]) >= 5
    assert json.loads((tmp_path / "soak.json").read_text())["requests"] == 96
    assert (tmp_path / "soak.png").stat().st_size > 10_000
    assert "**Errors: 0**" in (tmp_path / "soak.md").read_text()


def test_memory_that_keeps_rising_is_called_growing() -> None:
    seconds = [float(s) for s in range(600)]

    rising = memory_verdict(Samples(seconds, [300 + s * 0.2 for s in seconds]))
    steady = memory_verdict(Samples(seconds, [300 + (s % 7) for s in seconds]))

    assert rising["verdict"] == "growing" and rising["trend_mib_per_hour"] > 700
    assert steady["verdict"] == "flat"
