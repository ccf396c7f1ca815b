"""Routes of feedback, the model registry and drift, and how a server follows the registry;
logic lives in ``service.learning``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from service import metrics
from service.api.checks import check_no_nul
from service.api.responses import protected
from service.api.schemas import FeedbackRequest, FeedbackResponse, PromoteRequest, RegisterRequest
from service.errors import InputError, NotFoundError
from service.inference.bundle import BundleError, ModelBundle
from service.knowledge import EntryInput
from service.learning.drift import drift_report, recorded_confidence, training_distribution
from service.learning.feedback import FeedbackInput
from service.learning.registry import ModelRegistry, RegistryError, VersionRecord
from service.settings import Settings
from service.storage.tables import utc_now

__all__ = ["ROUTES", "activate_version", "model_to_serve", "run_learning_upkeep"]

logger = logging.getLogger(__name__)


def _version(record: VersionRecord) -> dict[str, Any]:
    return {
        **dataclasses.asdict(record),
        "registered_at": record.registered_at.isoformat(),
        "promoted_at": record.promoted_at.isoformat() if record.promoted_at else None,
    }


@post(
    "/v1/feedback",
    tags=["feedback"],
    status_code=HTTP_200_OK,
    **protected("feedback:write", 404, 413, 503),
)
async def post_feedback(state: State, data: FeedbackRequest) -> FeedbackResponse:
    """Record what the agent did with a prediction; a resolution makes the ticket a
    knowledge-base entry. Durable once answered."""
    check_no_nul("feedback", msgspec.structs.asdict(data))
    prediction = await asyncio.to_thread(state.predictions.get, data.prediction_id)
    if prediction is None:
        raise NotFoundError(f"prediction_id: no stored prediction {data.prediction_id!r}")
    unknown = sorted(set(data.labels) - set(prediction.labels))
    if unknown:
        raise InputError(
            f"labels: expected heads of the prediction {sorted(prediction.labels)}, found {unknown}"
        )
    feedback = FeedbackInput(
        prediction_id=data.prediction_id,
        labels=data.labels,
        suggestion_used=data.suggestion_used,
        resolution=data.resolution,
        agent=data.agent,
    )
    record = await asyncio.to_thread(state.feedback.add, feedback)

    knowledge = "no resolution given"
    if data.resolution and data.resolution.strip():
        if prediction.body is None:
            knowledge = "not stored: ticket texts are not kept (TRIAGE_PRIVACY_REDACT_KNOWLEDGE)"
        elif not state.knowledge.ready:
            knowledge = "not stored: the knowledge base is not ready; post the entry later"
        else:
            entry = EntryInput(
                source_id=data.ticket_id or f"prediction-{prediction.id}",
                body=prediction.body,
                subject=prediction.subject or "",
                resolution=data.resolution,
                labels={**prediction.labels, **data.labels},
                language=prediction.language,
                source_system="feedback",
            )
            results = await asyncio.to_thread(state.knowledge.base.add, [entry])
            knowledge = results[0].status
    corrected = [head for head, label in data.labels.items() if prediction.labels[head] != label]
    return FeedbackResponse(record.id, record.prediction_id, corrected, knowledge)


@get("/v1/models/registry", tags=["models"], **protected("predict"))
async def list_versions(state: State) -> dict[str, Any]:
    """Every registered bundle with its metrics and provenance; which one is active."""
    versions = await asyncio.to_thread(state.registry.versions)
    active = next((v.version for v in versions if v.active), None)
    return {"active": active, "versions": [_version(v) for v in versions]}


@post(
    "/v1/models/registry",
    tags=["models"],
    status_code=HTTP_200_OK,
    **protected("admin", 404, 413),
)
async def register_version(state: State, data: RegisterRequest) -> dict[str, Any]:
    """Add a bundle folder (as written by `make train`) to the registry, not yet active."""
    return _version(await asyncio.to_thread(state.registry.register, Path(data.model_dir)))


async def activate_version(state: State, record: VersionRecord) -> None:
    """Serve ``record``'s bundle in this process (the registry already says it is active)."""
    classifier = state.classifier
    if classifier.model is not None and classifier.model.bundle.version == record.version:
        return
    try:
        await classifier.reload(Path(record.directory))
    except (BundleError, OSError) as exc:
        raise RegistryError(
            f"version {record.version}: could not load {record.directory}: {exc}"
        ) from exc
    await state.knowledge.model_changed(classifier)


@post(
    "/v1/models/promote",
    tags=["models"],
    status_code=HTTP_200_OK,
    **protected("admin", 404, 409, 413, no_timeout=True),
)
async def promote(state: State, data: PromoteRequest) -> dict[str, Any]:
    """Compare a registered version with the active one on the latest feedback (stored as a
    shadow evaluation), then make it active and serve it; 409 if it is worse."""
    limit = state.settings.learning.shadow_tickets
    tickets = await asyncio.to_thread(state.feedback.labelled_tickets, limit)
    record, comparison = await asyncio.to_thread(
        state.registry.promote, data.version, tickets, data.force
    )
    await activate_version(state, record)
    return {"active": _version(record), "shadow_evaluation": comparison}


@post(
    "/v1/models/rollback",
    tags=["models"],
    status_code=HTTP_200_OK,
    **protected("admin", 404, no_timeout=True),
)
async def rollback(state: State) -> dict[str, Any]:
    """Make the previously active version active again, and serve it."""
    record = await asyncio.to_thread(state.registry.rollback)
    await activate_version(state, record)
    return {"active": _version(record)}


@get("/v1/models/evaluations", tags=["models"], **protected("predict"))
async def evaluations(state: State) -> list[dict[str, Any]]:
    """The latest shadow evaluations, newest first."""
    return await asyncio.to_thread(state.registry.evaluations)


@get("/v1/drift", tags=["models"], **protected("predict", 503))
async def drift(
    state: State,
    hours: float = Parameter(default=24.0, gt=0, le=24 * 90, description="Window length."),
    bucket_hours: float = Parameter(default=1.0, gt=0, le=24 * 30, description="Bucket length."),
) -> dict[str, Any]:
    """Predicted labels and confidence over the window against the training distribution of
    the served model: PSI per head and bucket, and alerts above TRIAGE_LEARNING_DRIFT_THRESHOLD."""
    if hours / bucket_hours > 1000:
        raise InputError(
            f"bucket_hours: expected at most 1000 buckets in the window, found "
            f"{hours / bucket_hours:.0f}"
        )
    model = state.classifier.model
    if model is None:
        raise NotFoundError("no model is loaded yet")
    end = utc_now()
    start = end - timedelta(hours=hours)
    predictions = await asyncio.to_thread(state.predictions.since, start)
    served = [p for p in predictions if p.model_version == model.bundle.version]
    training = training_distribution(model.bundle.directory)
    report = drift_report(
        served,
        training,
        start,
        end,
        timedelta(hours=bucket_hours),
        state.settings.learning.drift_threshold,
        state.settings.learning.drift_min_predictions,
        recorded_confidence(model.bundle.directory),
        state.settings.learning.drift_confidence_drop,
    )
    for head, value in report["window"]["psi"].items():
        if value is not None:
            metrics.DRIFT_PSI.labels(head).set(value)
    return {"model": {"name": model.bundle.name, "version": model.bundle.version}, **report}


def model_to_serve(settings: Settings, registry: ModelRegistry) -> Path:
    """The registry's active version; on a first start, or when the active version's folder
    no longer holds it (retrained in place), the configured bundle, registered and active."""
    active = registry.active()
    configured = ModelBundle.load(settings.model_dir)
    if active is not None:
        try:
            if ModelBundle.load(active.directory).version == active.version:
                if configured.version != active.version:
                    logger.info(
                        "serving the registry's active model %s; TRIAGE_MODEL_DIR holds %s, "
                        "which `python -m service models promote` would serve instead",
                        active.version,
                        configured.version,
                    )
                return Path(active.directory)
        except BundleError:
            pass
        logger.warning(
            "the active model %s is no longer in %s; serving and activating %s from %s",
            active.version,
            active.directory,
            configured.version,
            settings.model_dir,
        )
    record = registry.register(settings.model_dir)
    registry.activate(record.version)
    return settings.model_dir


async def run_learning_upkeep(state: State) -> None:
    """Start the upkeep task: every TRIAGE_LEARNING_REGISTRY_POLL_S, serve whatever version
    another process (or replica) made active; hourly, delete predictions past their
    retention. It runs until the server stops."""

    learning = state.settings.learning
    last_prune = float("-inf")

    async def follow() -> None:
        nonlocal last_prune
        while True:
            await asyncio.sleep(learning.registry_poll_s)
            try:
                active = await asyncio.to_thread(state.registry.active)
                if active is not None:
                    await activate_version(state, active)
                if learning.prediction_retention_days and time.monotonic() - last_prune > 3600:
                    cutoff = utc_now() - timedelta(days=learning.prediction_retention_days)
                    pruned = await asyncio.to_thread(state.predictions.prune, cutoff)
                    last_prune = time.monotonic()
                    if pruned:
                        logger.info(
                            "deleted %d predictions older than %s without feedback",
                            pruned,
                            cutoff.date(),
                        )
            except Exception:  # upkeep must outlive a passing database or bundle error
                logger.exception("learning upkeep failed; retrying")

    state.learning_upkeep = asyncio.create_task(follow(), name="learning-upkeep")


ROUTES = [
    post_feedback,
    list_versions,
    register_version,
    promote,
    rollback,
    evaluations,
    drift,
]
