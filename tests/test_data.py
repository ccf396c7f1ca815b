"""Tests for loading, mapping, cleaning, deduplicating and splitting ticket data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import (
    ColumnMapping,
    DataError,
    PreparedData,
    clean_tickets,
    find_duplicate_groups,
    load_tickets,
    prepare_data,
)

HEADS = ("queue", "priority", "type")

ZAMMAD_EXPORT = pd.DataFrame(
    {
        "title": ["Printer jammed", "VPN keeps dropping"],
        "article_body": [
            "The printer on floor 3 is jammed again.",
            "The VPN drops every few minutes.",
        ],
        "group": ["IT Support", "Network"],
        "priority_name": ["3 HIGH", "1 low"],
        "ticket_type": ["Incident", "Problem"],
    }
)

ZAMMAD_MAPPING = """\
columns:
  subject: title
  body: [body, article_body]
  queue: group
  priority: priority_name
  type: ticket_type
values:
  priority:
    "3 high": high
    "1 Low": low
"""


def write_csv(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def ticket_frame(
    bodies: list[str], queues: list[str], languages: list[str] | None = None
) -> pd.DataFrame:
    """A frame shaped like ``load_tickets`` output, for ``clean_tickets``."""
    n = len(bodies)
    return pd.DataFrame(
        {
            "subject": [""] * n,
            "body": bodies,
            "answer": [""] * n,
            "declared_language": languages or [""] * n,
            "tags": [""] * n,
            "queue": queues,
            "priority": [""] * n,
            "type": [""] * n,
            "source": ["test"] * n,
        }
    )


def test_yaml_mapping_maps_zammad_columns_and_renames_values(tmp_path: Path) -> None:
    mapping_file = tmp_path / "zammad.yaml"
    mapping_file.write_text(ZAMMAD_MAPPING, encoding="utf-8")
    mapping = ColumnMapping.from_yaml(mapping_file)

    loaded = load_tickets(
        [write_csv(ZAMMAD_EXPORT, tmp_path / "export.csv")], mapping, cache_dir=tmp_path / "cache"
    )
    cleaned, _ = clean_tickets(loaded, mapping, min_label_count=1)

    assert loaded["subject"].tolist() == ["Printer jammed", "VPN keeps dropping"]
    assert loaded["body"].tolist() == ZAMMAD_EXPORT["article_body"].tolist()
    assert loaded["queue"].tolist() == ["IT Support", "Network"]
    assert loaded["type"].tolist() == ["Incident", "Problem"]
    assert cleaned["priority"].tolist() == ["high", "low"]


def test_column_overrides_map_columns_like_a_mapping_file(tmp_path: Path) -> None:
    mapping = ColumnMapping.default().with_overrides(
        [
            "subject=title",
            "body=article_body",
            "queue=group",
            "priority=priority_name",
            "type=ticket_type",
        ]
    )

    loaded = load_tickets(
        [write_csv(ZAMMAD_EXPORT, tmp_path / "export.csv")], mapping, cache_dir=tmp_path / "cache"
    )

    assert loaded["queue"].tolist() == ["IT Support", "Network"]
    assert loaded["priority"].tolist() == ["3 HIGH", "1 low"]
    assert loaded["body"].tolist() == ZAMMAD_EXPORT["article_body"].tolist()


@pytest.mark.parametrize("override", ["queue", "queue=", "=group"])
def test_bad_column_override_says_what_is_expected(override: str) -> None:
    with pytest.raises(DataError, match=r"FIELD=COLUMN") as error:
        ColumnMapping.default().with_overrides([override])
    assert repr(override) in str(error.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_files_load(tmp_path: Path, suffix: str) -> None:
    frame = ZAMMAD_EXPORT.rename(
        columns={
            "title": "subject",
            "article_body": "body",
            "group": "queue",
            "priority_name": "priority",
            "ticket_type": "type",
        }
    )
    path = tmp_path / f"tickets{suffix}"
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)

    loaded = load_tickets([str(path)], ColumnMapping.default(), cache_dir=tmp_path / "cache")

    assert loaded["body"].tolist() == frame["body"].tolist()
    assert loaded["queue"].tolist() == frame["queue"].tolist()
    assert loaded["source"].tolist() == [path.name, path.name]


def test_missing_body_column_names_the_columns_found(tmp_path: Path) -> None:
    frame = pd.DataFrame({"title": ["Printer jammed"], "text": ["It is jammed."], "queue": ["IT"]})

    with pytest.raises(DataError, match="no body column") as error:
        load_tickets(
            [write_csv(frame, tmp_path / "export.csv")],
            ColumnMapping.default(),
            cache_dir=tmp_path / "cache",
        )
    assert all(column in str(error.value) for column in ("title", "text", "queue"))


def test_numbered_tag_columns_are_joined_in_numeric_order(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "body": ["The printer is jammed again.", "The VPN keeps dropping."],
            "queue": ["IT", "Network"],
            "tag_1": ["printer", "vpn"],
            "tag_2": ["hardware", ""],
            "tag_10": ["floor-3", "remote"],
        }
    )

    loaded = load_tickets(
        [write_csv(frame, tmp_path / "export.csv")],
        ColumnMapping.default(),
        cache_dir=tmp_path / "cache",
    )

    assert loaded["tags"].tolist() == ["printer,hardware,floor-3", "vpn,remote"]


def test_label_spellings_merge_to_the_most_frequent_one() -> None:
    queues = ["Billing and Payments"] * 3 + ["billing and  payments"]
    bodies = [f"Invoice number {i} was charged twice this month, please refund." for i in range(4)]

    cleaned, report = clean_tickets(
        ticket_frame(bodies, queues), ColumnMapping.default(), min_label_count=1
    )

    assert cleaned["queue"].tolist() == ["Billing and Payments"] * 4
    assert report["labels"]["queue"]["case_or_spacing_merged"] == 1


def test_rare_labels_become_missing_and_are_reported() -> None:
    queues = ["IT Support"] * 5 + ["Legal"] * 2
    bodies = [f"Ticket number {i} needs somebody to look at the laptop." for i in range(7)]
    frame = ticket_frame(bodies, queues)
    frame["priority"] = "high"

    cleaned, report = clean_tickets(frame, ColumnMapping.default(), min_label_count=5)

    assert "Legal" not in set(cleaned["queue"])
    assert (cleaned["queue"] == "").sum() == 2
    assert report["labels"]["queue"]["rare_labels_removed"] == ["Legal"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty body"),
        ('{"a": 1}', "structured data (JSON or dict text) instead of a message"),
        ("ok 12345 !!", "fewer than 10 letters"),
    ],
)
def test_junk_rows_are_dropped_with_a_reason(body: str, reason: str) -> None:
    good = "My laptop does not start after the update, please help."
    frame = ticket_frame([good, good, body], ["IT"] * 3)

    cleaned, report = clean_tickets(frame, ColumnMapping.default(), min_label_count=1)

    assert cleaned["body"].tolist() == [good, good]
    assert report["dropped"] == {reason: 1}


def test_escaped_newlines_become_real_newlines() -> None:
    frame = ticket_frame(["Hello team,\\nthe printer is jammed.\\r\\nThanks, Anna"], ["IT"])

    cleaned, _ = clean_tickets(frame, ColumnMapping.default(), min_label_count=1)

    assert cleaned["body"].iloc[0] == "Hello team,\nthe printer is jammed.\nThanks, Anna"


def test_detected_language_overrides_a_wrong_declared_one() -> None:
    german = (
        "Sehr geehrte Damen und Herren, seit dem letzten Update kann ich mich nicht mehr "
        "anmelden. Bitte helfen Sie mir schnell, weil ich heute noch arbeiten muss."
    )
    english = "Since the last update I can no longer log in. Please help me as soon as possible."
    frame = ticket_frame([german, english], ["IT", "IT"], languages=["en", "en"])

    cleaned, report = clean_tickets(frame, ColumnMapping.default(), min_label_count=1)

    assert cleaned["language"].tolist() == ["de", "en"]
    assert report["language_disagrees_with_declared"] == 1


SHORT_TICKETS = [
    "the printer on floor 3 is jammed again and shows error 42",
    "the printer on floor 3 is jammed again and shows error 42",
    "the printer on floor 3 is jammed again and displays error 42",
    "my invoice for march was charged twice to the company card",
]


def test_one_word_edit_shares_a_group_and_an_unrelated_text_does_not() -> None:
    groups = find_duplicate_groups(SHORT_TICKETS, threshold=0.7)

    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


def test_default_threshold_groups_a_one_word_edit_of_a_short_ticket() -> None:
    groups = find_duplicate_groups(SHORT_TICKETS)

    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


# Data for prepare_data: distinct tickets composed from per-queue word lists.
QUEUE_WORDS = {
    "IT Support": "laptop monitor keyboard printer driver password account login screen update "
    "windows mouse dock cable battery charger reboot crash freeze install",
    "Billing": "invoice payment refund charge card receipt tax amount discount subscription "
    "renewal credit debit bank transfer fee balance statement order quote",
    "Network": "vpn wifi router switch firewall latency bandwidth outage dns proxy packet "
    "gateway port cable signal tunnel certificate address subnet ping",
    "Facilities": "desk chair heating light door key parking kitchen elevator cleaning window "
    "badge room carpet noise coffee fridge plant locker shower",
}
FILLER = (
    "please help today urgent again still since monday colleague office team morning "
    "yesterday afternoon because after before while unable broken working"
)
LONG_BODY = (
    "Since yesterday morning the shared printer on the third floor next to the kitchen refuses "
    "every job we send from our laptops and shows a blinking orange light with error code 42 "
    "although we replaced the toner cartridge restarted the device twice and checked the paper "
    "trays for any stuck sheets please send a technician before the quarterly reports are due"
)


def distinct_tickets(rng: random.Random, per_queue: int) -> list[dict[str, str]]:
    rows = []
    filler = FILLER.split()
    for queue, text in QUEUE_WORDS.items():
        words = text.split()
        for _ in range(per_queue):
            body = " ".join(rng.sample(words, 8) + rng.sample(filler, 6))
            rows.append(
                {
                    "subject": " ".join(rng.sample(words, 3)),
                    "body": body.capitalize(),
                    "queue": queue,
                }
            )
    return rows


@pytest.fixture(scope="module")
def duplicated_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = random.Random(7)
    rows = distinct_tickets(rng, per_queue=32)
    exact = [dict(row) for row in rng.sample(rows, 10)]
    long_words = LONG_BODY.split()
    near = [{"subject": "Printer error 42", "body": LONG_BODY, "queue": "IT Support"}]
    for position in (5, 20, 40, 55):
        changed = [*long_words]
        changed[position] = "suddenly"
        near.append(
            {"subject": "Printer error 42", "body": " ".join(changed), "queue": "IT Support"}
        )
    all_rows = rows + exact + near
    rng.shuffle(all_rows)
    path = tmp_path_factory.mktemp("tickets") / "tickets.csv"
    pd.DataFrame(all_rows).to_csv(path, index=False)
    return str(path)


def prepare(source: str, cache: Path, seed: int = 13) -> PreparedData:
    return prepare_data(
        [source], ColumnMapping.default(("queue",)), ("queue",), seed=seed, cache_dir=cache
    )


@pytest.fixture(scope="module")
def prepared(duplicated_csv: str, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    return prepare(duplicated_csv, tmp_path_factory.mktemp("cache"))


def test_prepare_data_removes_exact_and_near_duplicates(prepared: PreparedData) -> None:
    duplicates = prepared.statistics["deduplication"]

    assert duplicates["exact_duplicates_removed"] == 10
    assert duplicates["near_duplicates_removed"] == 4
    assert sum(prepared.statistics["split_sizes"].values()) == 4 * 32 + 1


def test_no_duplicate_crosses_splits(prepared: PreparedData) -> None:
    names = [name for name, part in prepared.splits().items() for _ in range(len(part))]
    union = pd.concat(prepared.splits().values(), ignore_index=True)

    groups = find_duplicate_groups((union["subject"] + "\n" + union["body"]).tolist())

    split_of_group = pd.DataFrame({"group": groups, "split": names}).groupby("group")["split"]
    assert split_of_group.nunique().max() == 1


def test_every_queue_label_appears_in_train(prepared: PreparedData) -> None:
    assert set(prepared.train["queue"]) == set(QUEUE_WORDS)
    assert prepared.labels["queue"] == sorted(QUEUE_WORDS)


def test_same_seed_gives_same_splits_and_another_seed_different_ones(
    duplicated_csv: str, prepared: PreparedData, tmp_path: Path
) -> None:
    again = prepare(duplicated_csv, tmp_path / "cache", seed=13)
    other = prepare(duplicated_csv, tmp_path / "cache", seed=14)

    for name, part in prepared.splits().items():
        assert again.splits()[name]["body"].tolist() == part["body"].tolist()
    assert set(other.test["body"]) != set(prepared.test["body"])
    assert np.array_equal(
        np.sort(pd.concat(other.splits().values())["body"].to_numpy()),
        np.sort(pd.concat(prepared.splits().values())["body"].to_numpy()),
    )
