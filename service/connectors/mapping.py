"""Mapping files: how the model's labels are named in a ticket system, what the connector
writes back, and below which confidence it changes nothing.

One YAML file per connector (``data/connectors/*.yaml`` are working examples)::

    labels:                      # model label -> the system's name, per head
      queue: {IT Support: IT, Billing and Payments: Billing, ...}
      priority: {low: 1 low, medium: 2 normal, high: 3 high}
    write: [queue, priority, note, assignee]
    min_confidence: {queue: 0.5, priority: 0.4}
    review: {queue: Triage Review, tag: triage-review}
    agents: {anna: anna@example.com}          # routing's agent name -> the system's user
    closed_states: [closed]
    options: {}                               # what one system needs besides (Jira)

It is checked against the served model's labels when the server starts: a label the model
does not have, or one of its labels without a name here, stops start-up with a message
naming the file, the label and the valid choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from service.errors import ServiceError
from service.inference.classifier import TicketPrediction

__all__ = ["MAPPED_HEADS", "WRITABLE", "ConnectorMapping", "MappingError", "ReviewTarget"]

#: Heads a system has a field for: the queue (group, queue, component) and the priority.
MAPPED_HEADS = ("queue", "priority")
#: What a connector may write back.
WRITABLE = ("queue", "priority", "note", "assignee")
_KEYS = ("labels", "write", "min_confidence", "review", "agents", "closed_states", "options")


class MappingError(ServiceError, ValueError):
    """A mapping file does not fit the model or is malformed; the message names the file.
    Raised at start-up; at run time (another model was loaded) the connector answers 503."""

    status_code = 503


@dataclass(frozen=True)
class ReviewTarget:
    """Where a ticket goes when the model is not confident enough to change it."""

    queue: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class ConnectorMapping:
    #: The file it was read from, for messages.
    source: str
    #: Head -> model label -> the system's name.
    labels: Mapping[str, Mapping[str, str]]
    write: frozenset[str] = frozenset(WRITABLE)
    #: Head -> probability below which nothing is changed and the ticket goes to review.
    min_confidence: Mapping[str, float] = field(default_factory=dict)
    review: ReviewTarget = ReviewTarget()
    #: Routing's agent name -> the system's user (login, accountId); the same when absent.
    agents: Mapping[str, str] = field(default_factory=dict)
    #: States that count as closed (Zammad, OTOBO); Jira uses the status category instead.
    closed_states: tuple[str, ...] = ("closed",)
    options: Mapping[str, str] = field(default_factory=dict)

    def to_system(self, head: str, label: str) -> str:
        try:
            return self.labels[head][label]
        except KeyError:
            raise MappingError(
                f"{self.source}: labels.{head}: no name for the model's label {label!r} "
                "(was another model loaded?); add it and restart"
            ) from None

    def to_model(self, head: str, name: str | None) -> str | None:
        """The model label the system's ``name`` stands for; None for a name not mapped
        (a review queue, a group the model does not know)."""
        if name is None:
            return None
        for label, system_name in self.labels.get(head, {}).items():
            if system_name.casefold() == name.casefold():
                return label
        return None

    def agent(self, name: str) -> str:
        return self.agents.get(name, name)

    def threshold(self, head: str, default: float) -> float:
        return float(self.min_confidence.get(head, default))

    def unsure_heads(self, prediction: TicketPrediction, default: Mapping[str, float]) -> list[str]:
        """The written heads whose probability is below their threshold."""
        return [
            head
            for head in self.labels
            if head in self.write
            and head in prediction.heads
            and prediction.heads[head].probability < self.threshold(head, default.get(head, 0.5))
        ]

    @classmethod
    def identity(cls, heads: Mapping[str, Sequence[str]]) -> ConnectorMapping:
        """Model labels as they are, for the generic webhook."""
        return cls(
            source="(model labels)",
            labels={
                head: {label: label for label in heads[head]}
                for head in MAPPED_HEADS
                if head in heads
            },
        )

    @classmethod
    def from_yaml(cls, path: Path, heads: Mapping[str, Sequence[str]]) -> ConnectorMapping:
        """Read and check ``path`` against the model's ``heads`` (head -> labels)."""
        source = str(path)
        if not path.is_file():
            raise MappingError(
                f"{source}: no such mapping file; copy one of data/connectors/*.yaml and "
                "point the connector's MAPPING setting at it"
            )
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise MappingError(f"{source}: expected YAML, found a syntax error: {exc}") from exc
        if not isinstance(raw, dict):
            raise MappingError(f"{source}: expected a mapping with {list(_KEYS)}, found {raw!r}")
        unknown = sorted(set(raw) - set(_KEYS))
        if unknown:
            raise MappingError(f"{source}: unknown keys {unknown}; expected some of {list(_KEYS)}")

        labels = _labels(source, raw.get("labels"), heads)
        write = _names(source, "write", raw.get("write", list(WRITABLE)))
        bad_write = sorted(set(write) - set(WRITABLE))
        if bad_write:
            raise MappingError(
                f"{source}: write: expected some of {list(WRITABLE)}, found {bad_write}"
            )
        thresholds = _dict(source, "min_confidence", raw.get("min_confidence", {}))
        for head, value in thresholds.items():
            if head not in labels:
                raise MappingError(
                    f"{source}: min_confidence.{head}: expected one of the mapped heads "
                    f"{sorted(labels)}"
                )
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise MappingError(
                    f"{source}: min_confidence.{head}: expected a probability 0..1, found {value!r}"
                )
        review = _dict(source, "review", raw.get("review", {}))
        bad_review = sorted(set(review) - {"queue", "tag"})
        if bad_review:
            raise MappingError(f"{source}: review: expected queue and/or tag, found {bad_review}")
        agents = _dict(source, "agents", raw.get("agents", {}))
        options = _dict(source, "options", raw.get("options", {}))
        return cls(
            source=source,
            labels=labels,
            write=frozenset(write),
            min_confidence={head: float(value) for head, value in thresholds.items()},
            review=ReviewTarget(queue=_text(review.get("queue")), tag=_text(review.get("tag"))),
            agents={str(k): str(v) for k, v in agents.items()},
            closed_states=tuple(
                _names(source, "closed_states", raw.get("closed_states", ["closed"]))
            ),
            options={str(k): str(v) for k, v in options.items()},
        )


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _dict(source: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{source}: {key}: expected a mapping, found {value!r}")
    return {str(k): v for k, v in value.items()}


def _names(source: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MappingError(f"{source}: {key}: expected a list of names, found {value!r}")
    return value


def _labels(source: str, raw: Any, heads: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str]]:
    sections = _dict(source, "labels", raw)
    if not sections:
        raise MappingError(
            f"{source}: labels: expected names for at least one of the heads {list(MAPPED_HEADS)}"
        )
    labels: dict[str, dict[str, str]] = {}
    for head, names in sections.items():
        if head not in MAPPED_HEADS:
            raise MappingError(
                f"{source}: labels.{head}: expected one of the heads {list(MAPPED_HEADS)}"
            )
        if head not in heads:
            raise MappingError(
                f"{source}: labels.{head}: the model has no {head!r} head; its heads are "
                f"{sorted(heads)}"
            )
        names = _dict(source, f"labels.{head}", names)
        valid = list(heads[head])
        for label, name in names.items():
            if label not in valid:
                raise MappingError(
                    f"{source}: labels.{head}: {label!r} is not a label of the model's {head} "
                    f"head; expected one of {valid}"
                )
            if not isinstance(name, str) or not name.strip():
                raise MappingError(
                    f"{source}: labels.{head}.{label}: expected the system's name, found {name!r}"
                )
        missing = [label for label in valid if label not in names]
        if missing:
            raise MappingError(
                f"{source}: labels.{head}: no name for the model's labels {missing}; add one "
                "for each (the same name for several labels is not allowed)"
            )
        taken: dict[str, str] = {}
        for label, name in names.items():
            key = name.strip().casefold()
            if key in taken:
                raise MappingError(
                    f"{source}: labels.{head}: {taken[key]!r} and {label!r} both map to "
                    f"{name!r}; an agent's move to it could not be told apart; give each "
                    "label its own name"
                )
            taken[key] = label
        labels[head] = {label: name.strip() for label, name in names.items()}
    return labels
