"""The model registry: every bundle with its version, metrics and provenance; one is active.

Promotion first runs a shadow evaluation: the candidate and the active model classify the
latest tickets with agents' feedback, and their accuracy and macro-F1 per head against the
agents' labels are stored. A candidate worse than the active model on the mean macro-F1 is
refused unless forced. Rollback makes the previously active version active again. Servers
load the active version at start and follow changes made by other processes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import ServiceError
from service.inference.bundle import BundleError, ModelBundle, TriageRuntime, bundle_record
from service.knowledge.records import as_utc
from service.learning.feedback import LabelledTicket
from service.storage.tables import ModelVersion, ShadowEvaluation, utc_now
from service.text import ticket_text

__all__ = [
    "ModelRegistry",
    "PromotionRefusedError",
    "RegistryError",
    "VersionRecord",
    "feedback_until",
    "macro_f1",
    "shadow_evaluate",
]

logger = logging.getLogger(__name__)

#: A candidate may be this much below the active model's mean macro-F1 and still be promoted.
TOLERANCE = 0.01


class RegistryError(ServiceError):
    """A version asked for is unknown, or its bundle is gone."""

    status_code = 404


class PromotionRefusedError(ServiceError):
    """The shadow evaluation found the candidate worse than the active model."""

    status_code = 409


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: str
    directory: str
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    registered_at: datetime
    active: bool
    promoted_at: datetime | None


def _record(row: ModelVersion) -> VersionRecord:
    return VersionRecord(
        row.name,
        row.version,
        row.directory,
        dict(row.metrics),
        dict(row.provenance),
        row.registered_at,
        row.active,
        row.promoted_at,
    )


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels that occur in ``truth`` or ``predicted``."""
    labels = sorted(set(truth) | set(predicted))
    scores = []
    for label in labels:
        hits = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        claimed = sum(p == label for p in predicted)
        actual = sum(t == label for t in truth)
        scores.append(2 * hits / (claimed + actual) if claimed + actual else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def _predict(bundle_dir: Path, tickets: Sequence[LabelledTicket]) -> dict[str, list[str]]:
    bundle = ModelBundle.load(bundle_dir)
    runtime = TriageRuntime(bundle, "fp32", "cpu", None)
    texts = [ticket_text(t.subject, t.body, bundle.text_prefix) for t in tickets]
    probabilities = runtime.probabilities(runtime.run(texts).logits)
    return {
        head: [bundle.heads[head][int(i)] for i in values.argmax(axis=1)]
        for head, values in probabilities.items()
    }


def shadow_evaluate(
    candidate_dir: Path, active_dir: Path | None, tickets: Sequence[LabelledTicket]
) -> dict[str, Any]:
    """Accuracy and macro-F1 per head of both models on the agents' labels."""
    results: dict[str, Any] = {}
    for role, folder in (("candidate", candidate_dir), ("active", active_dir)):
        if folder is None or not tickets:
            continue
        predicted = _predict(folder, tickets)
        heads = {}
        for head, labels in predicted.items():
            scored = [
                (t.labels[head], p)
                for t, p in zip(tickets, labels, strict=True)
                if head in t.labels
            ]
            if not scored:
                continue
            truth, guess = zip(*scored, strict=True)
            heads[head] = {
                "accuracy": round(float(np.mean([a == b for a, b in scored])), 4),
                "macro_f1": round(macro_f1(truth, guess), 4),
                "support": len(scored),
            }
        mean = np.mean([h["macro_f1"] for h in heads.values()]) if heads else 0.0
        results[role] = {"heads": heads, "mean_macro_f1": round(float(mean), 4)}
    return results


def feedback_until(bundle_dir: Path) -> datetime | None:
    """When the latest feedback a bundle was trained on was given (None: trained on none)."""
    recorded = bundle_record(bundle_dir, "data_statistics.json").get("feedback_until")
    return as_utc(datetime.fromisoformat(recorded)) if recorded else None


class ModelRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, directory: Path) -> VersionRecord:
        """Add a bundle (idempotent on its version)."""
        try:
            bundle = ModelBundle.load(directory)
        except BundleError as exc:
            raise RegistryError(str(exc)) from exc
        recorded = bundle_record(bundle.directory, "metrics.json")
        metrics = {"test": recorded.get("test", {}).get("fp32", {})} if recorded else {}
        for head in metrics.get("test", {}).values():
            head.pop("per_language", None)
        provenance = bundle.raw.get("provenance", {})
        try:
            return self._put_version(bundle, directory, metrics, provenance)
        except IntegrityError:
            # Another replica registered the same version between our look-up and insert;
            # the second pass finds its row.
            return self._put_version(bundle, directory, metrics, provenance)

    def _put_version(
        self,
        bundle: ModelBundle,
        directory: Path,
        metrics: dict[str, Any],
        provenance: dict[str, Any],
    ) -> VersionRecord:
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == bundle.version))
            if row is None:
                row = ModelVersion(
                    name=bundle.name,
                    version=bundle.version,
                    registered_at=utc_now(),
                    active=False,
                )
                session.add(row)
                logger.info(
                    "registered model %s %s from %s", bundle.name, bundle.version, directory
                )
            row.directory = str(Path(directory).resolve())
            row.metrics, row.provenance = metrics, provenance
            session.flush()
            return _record(row)

    def versions(self) -> list[VersionRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ModelVersion).order_by(ModelVersion.registered_at))
            return [_record(row) for row in rows]

    def active(self) -> VersionRecord | None:
        with Session(self.engine) as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
            return None if row is None else _record(row)

    def get(self, version: str) -> VersionRecord:
        with Session(self.engine) as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if row is None:
                known = [v.version for v in self.versions()]
                raise RegistryError(f"version: expected one of {known}, found {version!r}")
            return _record(row)

    def activate(self, version: str) -> VersionRecord:
        """Make ``version`` the active one, without evaluation (first start, rollback)."""
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if row is None:
                raise RegistryError(f"version: no registered version {version!r}")
            session.execute(update(ModelVersion).values(active=False))
            row.active, row.promoted_at = True, utc_now()
            session.flush()
            return _record(row)

    def promote(
        self, version: str, tickets: Sequence[LabelledTicket], force: bool = False
    ) -> tuple[VersionRecord, dict[str, Any]]:
        """Shadow-evaluate ``version`` against the active model on ``tickets``, store the
        comparison, and make it active unless it is worse (or ``force``)."""
        candidate = self.get(version)
        if not Path(candidate.directory).is_dir():
            raise RegistryError(f"version {version}: its bundle {candidate.directory} is gone")
        # Feedback the candidate was trained on would flatter it: only later feedback counts.
        until = feedback_until(Path(candidate.directory))
        unseen = [t for t in tickets if until is None or t.created_at > until]
        active = self.active()
        active_dir = Path(active.directory) if active and active.version != version else None
        results = shadow_evaluate(Path(candidate.directory), active_dir, unseen)
        results["excluded_as_trained_on"] = len(tickets) - len(unseen)
        verdict = self._verdict(results, force)
        with Session(self.engine) as session, session.begin():
            session.add(
                ShadowEvaluation(
                    candidate_version=version,
                    active_version=active.version if active else None,
                    feedback_count=len(unseen),
                    results={**results, "verdict": verdict},
                    created_at=utc_now(),
                )
            )
        comparison = {**results, "verdict": verdict, "feedback_count": len(unseen)}
        if verdict.startswith("refused"):
            raise PromotionRefusedError(
                f"version {version}: {verdict}; send force=true to promote it anyway"
            )
        return self.activate(version), comparison

    @staticmethod
    def _verdict(results: dict[str, Any], force: bool) -> str:
        if "active" not in results or "candidate" not in results:
            return (
                "promoted: nothing to compare with (no active model, or no feedback given "
                "after the candidate's training data)"
            )
        gain = results["candidate"]["mean_macro_f1"] - results["active"]["mean_macro_f1"]
        if gain < -TOLERANCE and not force:
            return f"refused: mean macro-F1 {gain:+.4f} against the active model"
        forced = " (forced)" if gain < -TOLERANCE else ""
        return f"promoted{forced}: mean macro-F1 {gain:+.4f} against the active model"

    def rollback(self) -> VersionRecord:
        """Make the version that was active before the current one active again."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ModelVersion)
                .where(ModelVersion.promoted_at.is_not(None))
                .order_by(ModelVersion.promoted_at.desc())
            ).all()
        current = next((row for row in rows if row.active), None)
        previous = next((row for row in rows if not row.active), None)
        if current is None or previous is None:
            raise RegistryError("rollback: no previously active version to go back to")
        return self.activate(previous.version)

    def evaluations(self, limit: int = 20) -> list[dict[str, Any]]:
        query = select(ShadowEvaluation).order_by(ShadowEvaluation.id.desc()).limit(limit)
        with Session(self.engine) as session:
            return [
                {
                    "candidate_version": row.candidate_version,
                    "active_version": row.active_version,
                    "feedback_count": row.feedback_count,
                    "results": row.results,
                    "created_at": row.created_at.isoformat(),
                }
                for row in session.scalars(query)
            ]
