"""How the dashboard does on real tickets: ``make bench-web``.

Classifies a ticket file through the application (so every ticket is stored with its
embedding, as in production), then measures, side by side in one run:

- how long the dashboard, the printable report and the CSV take to answer (median of
  repeats);
- how long finding recurring issues takes, and what it finds: each issue's name, size and
  the share of its tickets that carry its most common label of ``--label`` (purity), and
  the share of all tickets that fall in a shown issue (coverage).

The report (Markdown and JSON) goes to ``--output``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from tqdm import tqdm

from service.api.app import create_app
from service.columns import cell_text
from service.files import read_rows, write_json
from service.settings import AuthSettings, RateLimitSettings, Settings
from service.web.insights import RecurringIssue

__all__ = ["main", "run_benchmark"]

logger = logging.getLogger(__name__)
BATCH = 32


def _tickets(path: Path, subject: str, body: str, label: str, limit: int) -> list[dict[str, str]]:
    rows = read_rows(path)
    missing = [c for c in (subject, body, label) if c and rows and c not in rows[0]]
    if missing:
        raise SystemExit(f"{path}: expected columns {missing}, found {sorted(rows[0])}")
    tickets = []
    for row in rows:
        text = cell_text(row.get(body))
        if text:
            tickets.append(
                {
                    "subject": cell_text(row.get(subject)),
                    "body": text,
                    "label": cell_text(row.get(label)),
                }
            )
        if len(tickets) == limit:
            break
    return tickets


def _median_ms(client: TestClient[Any], path: str, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text[:300]}")
    return statistics.median(timings)


def _purity(issue: RecurringIssue, labels: dict[str, str]) -> tuple[str, float]:
    counted = Counter(labels[p] for p in issue.prediction_ids if p in labels)
    label, count = counted.most_common(1)[0]
    return label, count / sum(counted.values())


def run_benchmark(
    model_dir: Path, tickets_file: Path, columns: tuple[str, str, str], limit: int, repeats: int
) -> dict[str, Any]:
    tickets = _tickets(tickets_file, *columns, limit)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
        settings = Settings.from_env(
            model_dir=model_dir,
            data_dir=Path(folder),
            database_url="",
            auth=AuthSettings(enabled=False),
            rate_limit=RateLimitSettings(requests=0),
        )
        settings = dataclasses.replace(
            settings,
            web=dataclasses.replace(settings.web, cluster_max_tickets=limit, cluster_cache_s=0),
        )
        with TestClient(create_app(settings), timeout=600) as client:
            while client.get("/ready").status_code != 200:
                time.sleep(0.2)
            labels: dict[str, str] = {}
            started = time.perf_counter()
            for first in tqdm(range(0, len(tickets), BATCH), desc="classifying", unit="batch"):
                chunk = tickets[first : first + BATCH]
                answer = client.post(
                    "/v1/classify/batch",
                    json={"tickets": [{"subject": t["subject"], "body": t["body"]} for t in chunk]},
                )
                answer.raise_for_status()
                for ticket, result in zip(chunk, answer.json()["results"], strict=True):
                    labels[result["prediction_id"]] = ticket["label"]
            classify_s = time.perf_counter() - started

            insights = client.app.state.insights
            timings = []
            for _ in range(repeats):
                began = time.perf_counter()
                issues = insights.recurring_issues()
                timings.append(time.perf_counter() - began)
            pages = {
                path: _median_ms(client, path, repeats)
                for path in ("/dashboard", "/reports", "/reports/export.csv")
            }
            model = client.get("/v1/models").json()

    scored = []
    for issue in issues:
        label, purity = _purity(issue, labels)
        scored.append(
            {
                "name": issue.name,
                "tickets": issue.tickets,
                "majority_label": label,
                "purity": round(purity, 3),
                "example": issue.example,
            }
        )
    covered = sum(issue.tickets for issue in issues)
    weighted = sum(s["purity"] * s["tickets"] for s in scored) / covered if covered else 0.0
    return {
        "tickets_file": str(tickets_file),
        "tickets": len(tickets),
        "model": f"{model['name']} {model['version']}",
        "label_column": columns[2],
        "classify_tickets_per_s": round(len(tickets) / classify_s, 1),
        "recurring_issues_s_median": round(statistics.median(timings), 3),
        "pages_ms_median": {path: round(ms, 1) for path, ms in pages.items()},
        "repeats": repeats,
        "issues": len(issues),
        "coverage": round(covered / len(tickets), 3),
        "weighted_purity": round(weighted, 3),
        "label_majority_share": round(
            Counter(labels.values()).most_common(1)[0][1] / len(labels), 3
        ),
        "top_issues": scored[:15],
    }


def report_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Dashboard on real tickets",
        "",
        f"{result['tickets']} tickets of `{result['tickets_file']}`, classified by "
        f"{result['model']} ({result['classify_tickets_per_s']} tickets/s through the API).",
        "",
        f"Medians of {result['repeats']} runs:",
        "",
        "| what | time |",
        "|---|---:|",
        f"| recurring issues (clustering and naming) | {result['recurring_issues_s_median']} s |",
        *(f"| GET {path} | {ms} ms |" for path, ms in result["pages_ms_median"].items()),
        "",
        f"{result['issues']} recurring issues cover {100 * result['coverage']:.1f} % of the "
        f"tickets; their mean purity against `{result['label_column']}` (share of an issue's "
        f"tickets with its most common label), weighted by size, is "
        f"{100 * result['weighted_purity']:.1f} % (the most common label alone is "
        f"{100 * result['label_majority_share']:.1f} % of all tickets).",
        "",
        "| issue | tickets | most common label | purity | example |",
        "|---|---:|---|---:|---|",
        *(
            f"| {i['name']} | {i['tickets']} | {i['majority_label']} | "
            f"{100 * i['purity']:.0f} % | {i['example'][:70].replace('|', '/')} |"
            for i in result["top_issues"]
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--tickets", type=Path, required=True)
    parser.add_argument("--subject-column", default="subject")
    parser.add_argument("--body-column", default="body")
    parser.add_argument("--label-column", default="queue", help="scored against (purity)")
    parser.add_argument("--limit", type=int, default=3000, help="tickets used")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("runs/bench/web"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    result = run_benchmark(
        args.model_dir,
        args.tickets,
        (args.subject_column, args.body_column, args.label_column),
        args.limit,
        args.repeats,
    )
    write_json(args.output / "report.json", result)
    (args.output / "report.md").write_text(report_markdown(result), encoding="utf-8")
    sys.stdout.write(report_markdown(result))


if __name__ == "__main__":
    main()
