"""Mapping files are checked against the model's labels with messages that name the file,
the label and the valid choices; connector settings keep their secrets out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.connectors import MappingError
from service.connectors.mapping import ConnectorMapping
from service.settings import Settings, SettingsError
from tests.connector_apps import EXAMPLES

HEADS = {
    "queue": ["IT Support", "Billing and Payments"],
    "priority": ["low", "medium", "high"],
    "type": ["Incident", "Request"],
}


def write(folder: Path, content: dict) -> Path:
    path = folder / "mapping.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def valid() -> dict:
    return {
        "labels": {
            "queue": {"IT Support": "IT", "Billing and Payments": "Billing"},
            "priority": {"low": "1 low", "medium": "2 normal", "high": "3 high"},
        },
        "min_confidence": {"queue": 0.6},
    }


def test_a_valid_file_maps_both_ways(tmp_path: Path) -> None:
    mapping = ConnectorMapping.from_yaml(write(tmp_path, valid()), HEADS)

    assert mapping.to_system("queue", "IT Support") == "IT"
    assert mapping.to_model("queue", "billing") == "Billing and Payments"
    assert mapping.to_model("queue", "Triage Review") is None
    assert mapping.threshold("queue", 0.5) == 0.6 and mapping.threshold("priority", 0.5) == 0.5


def test_an_unknown_label_names_the_file_the_label_and_the_choices(tmp_path: Path) -> None:
    content = valid()
    content["labels"]["queue"]["Networking"] = "Net"
    path = write(tmp_path, content)

    with pytest.raises(MappingError) as error:
        ConnectorMapping.from_yaml(path, HEADS)

    message = str(error.value)
    assert str(path) in message and "'Networking'" in message
    assert "['IT Support', 'Billing and Payments']" in message


def test_a_label_without_a_name_is_an_error(tmp_path: Path) -> None:
    content = valid()
    del content["labels"]["priority"]["high"]

    with pytest.raises(MappingError, match=r"no name for the model's labels \['high'\]"):
        ConnectorMapping.from_yaml(write(tmp_path, content), HEADS)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"labels": {"mood": {"x": "y"}}}, "expected one of the heads"),
        ({"write": ["queue", "status"]}, "write: expected some of"),
        ({"min_confidence": {"queue": 1.5}}, "expected a probability 0..1"),
        ({"review": {"group": "x"}}, "review: expected queue and/or tag"),
        ({"colour": "blue"}, "unknown keys ['colour']"),
    ],
)
def test_malformed_entries_are_refused(tmp_path: Path, change: dict, expected: str) -> None:
    with pytest.raises(MappingError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        ConnectorMapping.from_yaml(write(tmp_path, {**valid(), **change}), HEADS)


def test_two_labels_with_one_name_are_refused(tmp_path: Path) -> None:
    content = valid()
    content["labels"]["queue"]["Billing and Payments"] = "IT"

    with pytest.raises(MappingError, match="both map to 'IT'"):
        ConnectorMapping.from_yaml(write(tmp_path, content), HEADS)


def test_a_missing_file_says_where_to_find_examples(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="data/connectors"):
        ConnectorMapping.from_yaml(tmp_path / "nope.yaml", HEADS)


@pytest.mark.parametrize("system", ["zammad", "otobo", "jira"])
def test_the_example_files_fit_the_sample_labels(system: str) -> None:
    sample_heads = {
        "queue": [
            "Technical Support",
            "Product Support",
            "Customer Service",
            "IT Support",
            "Billing and Payments",
            "Returns and Exchanges",
            "Service Outages and Maintenance",
            "Sales and Pre-Sales",
            "Human Resources",
            "General Inquiry",
        ],
        "priority": ["low", "medium", "high"],
    }

    mapping = ConnectorMapping.from_yaml(EXAMPLES / f"{system}.yaml", sample_heads)

    assert set(mapping.labels) == {"queue", "priority"}


def test_connector_secrets_stay_out_of_repr_and_are_required_when_enabled() -> None:
    settings = Settings.from_env(
        {
            "TRIAGE_JIRA_ENABLED": "true",
            "TRIAGE_JIRA_URL": "https://acme.atlassian.net",
            "TRIAGE_JIRA_EMAIL": "triage@acme.example",
            "TRIAGE_JIRA_API_TOKEN": "ATATT3xFfGF0-very-secret",
            "TRIAGE_JIRA_WEBHOOK_SECRET": "webhook-very-secret",
        }
    )

    assert settings.connectors.jira.api_token == "ATATT3xFfGF0-very-secret"
    assert "very-secret" not in repr(settings)
    with pytest.raises(SettingsError, match="TRIAGE_ZAMMAD_TOKEN: expected a Zammad access token"):
        Settings.from_env({"TRIAGE_ZAMMAD_ENABLED": "true", "TRIAGE_ZAMMAD_URL": "http://z"})


def test_a_short_secret_is_refused_without_repeating_it() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(
            {"TRIAGE_WEBHOOK_INBOUND_ENABLED": "true", "TRIAGE_WEBHOOK_INBOUND_SECRET": "tiny-pw"}
        )

    assert "TRIAGE_WEBHOOK_INBOUND_SECRET: expected a secret" in str(error.value)
    assert "tiny-pw" not in str(error.value) and "a value of 7 characters" in str(error.value)
