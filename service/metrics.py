"""Prometheus metrics of the model path; HTTP request metrics come from Litestar's plugin.

Defined once per process: the default registry refuses a second metric of the same name.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SECONDS",
    "BATCH_SIZE",
    "DRIFT_PSI",
    "PREDICTIONS",
    "QUEUE_DEPTH",
    "REJECTED",
]

BATCH_SIZE = Histogram(
    "ticket_triage_batch_size",
    "Tickets per model run.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_SECONDS = Histogram(
    "ticket_triage_batch_seconds",
    "Time of one model run.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge("ticket_triage_queue_depth", "Tickets waiting for the model.")
REJECTED = Counter("ticket_triage_rejected_tickets", "Tickets refused because the queue was full.")
PREDICTIONS = Counter(
    "ticket_triage_predictions", "Predicted labels, per head.", labelnames=("head", "label")
)
DRIFT_PSI = Gauge(
    "ticket_triage_label_drift_psi",
    "Population stability index of predicted labels against training, per head, as of the "
    "latest GET /v1/drift.",
    labelnames=("head",),
)
