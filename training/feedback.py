"""Agents' feedback as training data: tickets whose labels agents confirmed or corrected.

``feedback_frame`` reads the service's database (the tickets stored with predictions that
received feedback) into the frame ``training.data.load_tickets`` makes from files: the
predicted labels, overridden by the agent's where given. ``frame.attrs["feedback_until"]``
is the time of the latest feedback read: the bundle records it, and a shadow evaluation of
the bundle uses only feedback given later, which it has not been trained on.
``prepare_data`` puts these rows first, so that when the same ticket is also in an export,
deduplication keeps the agent's labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from service.columns import DataError
from service.learning.feedback import FeedbackStore
from service.storage import StorageError, create_database_engine, upgrade_schema

__all__ = ["feedback_frame"]


def feedback_frame(database_url: str, heads: Sequence[str]) -> pd.DataFrame:
    try:
        engine = create_database_engine(database_url)
        upgrade_schema(engine)
        tickets = FeedbackStore(engine).labelled_tickets()
        engine.dispose()
    except StorageError as exc:
        raise DataError(f"--feedback: {exc}") from exc
    rows = [
        {
            "subject": ticket.subject,
            "body": ticket.body,
            "answer": "",
            "declared_language": ticket.language,
            "tags": "",
            **{head: ticket.labels.get(head, "") for head in heads},
            "source": "feedback",
        }
        for ticket in tickets
    ]
    columns = ["subject", "body", "answer", "declared_language", "tags", *heads, "source"]
    frame = pd.DataFrame(rows, columns=columns)
    latest = max((ticket.created_at for ticket in tickets), default=None)
    frame.attrs["feedback_until"] = latest.isoformat() if latest else None
    return frame
