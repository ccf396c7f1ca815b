"""Request and response bodies of the HTTP API, with the examples shown in the OpenAPI page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "Alternative",
    "BatchRequest",
    "BatchResponse",
    "Classification",
    "HeadResult",
    "KnowledgeEntryRequest",
    "KnowledgeEntryResponse",
    "KnowledgeImportRequest",
    "KnowledgeWriteResponse",
    "KnowledgeWriteResult",
    "ReloadRequest",
    "SuggestFiltersRequest",
    "SuggestRequest",
    "SuggestResponse",
    "SuggestionResult",
    "TicketRequest",
]

EXAMPLE_TICKET = {
    "subject": "VPN drops every few minutes",
    "body": "Since this morning the VPN client disconnects every five minutes for the whole "
    "sales team. We cannot reach the CRM. Please help urgently.",
}


class TicketRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One ticket: the body is required, subject and language are optional."""

    body: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            description="Ticket text, any language.",
            examples=[EXAMPLE_TICKET["body"]],
        ),
    ]
    subject: (
        Annotated[
            str, msgspec.Meta(description="Subject line.", examples=[EXAMPLE_TICKET["subject"]])
        ]
        | None
    ) = None
    language: (
        Annotated[
            str,
            msgspec.Meta(
                pattern="^[a-z]{2,3}$",
                description="ISO 639 code; detected from the text when absent.",
                examples=["en"],
            ),
        ]
        | None
    ) = None
    include: Annotated[
        list[Literal["suggestions"]],
        msgspec.Meta(
            description="Extras to answer in the same call: `suggestions` adds similar resolved "
            "tickets (as `POST /v1/suggest` with its defaults).",
            examples=[["suggestions"]],
        ),
    ] = msgspec.field(default_factory=list)


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    tickets: Annotated[
        list[TicketRequest],
        msgspec.Meta(
            min_length=1, examples=[[EXAMPLE_TICKET, {"body": "Meine Rechnung ist doppelt."}]]
        ),
    ]


Label = Annotated[str, msgspec.Meta(examples=["Technical Support"])]
Probability = Annotated[
    float, msgspec.Meta(ge=0, le=1, description="Calibrated probability.", examples=[0.83])
]


class Alternative(msgspec.Struct):
    label: Label
    probability: Probability


class HeadResult(msgspec.Struct):
    """The most probable label of one head, its calibrated probability, and runners-up."""

    label: Label
    probability: Probability
    alternatives: Annotated[
        list[Alternative],
        msgspec.Meta(examples=[[{"label": "IT Support", "probability": 0.09}]]),
    ]


class Classification(msgspec.Struct, omit_defaults=True):
    """Predictions for one ticket: one object per head. ``queue``, ``priority`` and ``type``
    appear when the model has those heads; a model trained with other heads answers them
    in ``other_heads``."""

    language: Annotated[str, msgspec.Meta(examples=["en"])]
    language_detected: Annotated[
        bool, msgspec.Meta(description="False when the request gave the language.")
    ]
    needs_review: Annotated[
        bool, msgspec.Meta(description="Some head is below its confidence threshold.")
    ]
    review_heads: Annotated[list[str], msgspec.Meta(examples=[["priority"]])]
    truncated: Annotated[
        bool, msgspec.Meta(description="The text was cut at the model's maximum length.")
    ]
    model: Annotated[
        dict[str, str],
        msgspec.Meta(examples=[{"name": "ticket-triage", "version": "2026.12.03-181655"}]),
    ]
    queue: HeadResult | None = None
    priority: HeadResult | None = None
    type: HeadResult | None = None
    other_heads: dict[str, HeadResult] = msgspec.field(default_factory=dict)
    suggestions: list[SuggestionResult] | None = None


class BatchResponse(msgspec.Struct):
    results: list[Classification]


class ReloadRequest(msgspec.Struct, forbid_unknown_fields=True):
    model_dir: (
        Annotated[str, msgspec.Meta(description="Bundle folder; the configured one when absent.")]
        | None
    ) = None


# Knowledge base and suggestions.

SourceId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=255,
        description="The ticket's id in its own system; writes are idempotent on it.",
        examples=["ZAMMAD-48213"],
    ),
]
LanguageCode = Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}$", examples=["en"])]


class KnowledgeEntryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A resolved ticket: its text and how it was resolved."""

    source_id: SourceId
    body: Annotated[
        str,
        msgspec.Meta(min_length=1, examples=["The VPN client disconnects every five minutes."]),
    ]
    resolution: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            description="What solved it: shown to agents as the suggested resolution.",
            examples=["Updated the VPN client to 5.2 and raised the keep-alive interval."],
        ),
    ]
    subject: Annotated[str, msgspec.Meta(examples=["VPN drops"])] | None = None
    labels: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Label per head; `queue` can be filtered on.",
            examples=[{"queue": "IT Support", "priority": "high", "type": "Incident"}],
        ),
    ] = msgspec.field(default_factory=dict)
    language: (
        Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}$", description="Detected when absent.")]
        | None
    ) = None
    tags: Annotated[list[str], msgspec.Meta(examples=[["vpn", "network"]])] = msgspec.field(
        default_factory=list
    )
    source_system: Annotated[str, msgspec.Meta(max_length=64, examples=["zammad"])] | None = None
    created_at: (
        Annotated[datetime, msgspec.Meta(description="When the ticket was opened.")] | None
    ) = None
    resolved_at: datetime | None = None


class KnowledgeImportRequest(msgspec.Struct, forbid_unknown_fields=True):
    entries: Annotated[list[KnowledgeEntryRequest], msgspec.Meta(min_length=1)]


class KnowledgeWriteResult(msgspec.Struct):
    source_id: str
    status: Annotated[
        str, msgspec.Meta(examples=["created"], description="created, updated or unchanged")
    ]


class KnowledgeWriteResponse(msgspec.Struct):
    created: int
    updated: int
    unchanged: int
    entries: list[KnowledgeWriteResult]


class KnowledgeEntryResponse(msgspec.Struct):
    source_id: str
    subject: str
    body: str
    resolution: str
    labels: dict[str, str]
    language: str
    tags: list[str]
    source_system: str | None
    created_at: datetime
    resolved_at: datetime | None
    updated_at: datetime


class SuggestFiltersRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Only entries matching every given filter are suggested."""

    queue: Annotated[
        list[str], msgspec.Meta(examples=[["IT Support"]], description="Any of these queues.")
    ] = msgspec.field(default_factory=list)
    language: Annotated[
        list[LanguageCode], msgspec.Meta(examples=[["en", "de"]], description="Any of these.")
    ] = msgspec.field(default_factory=list)
    created_after: (
        Annotated[datetime, msgspec.Meta(description="Opened at or after (ISO 8601).")] | None
    ) = None
    created_before: (
        Annotated[datetime, msgspec.Meta(description="Opened before (ISO 8601).")] | None
    ) = None


class SuggestRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A new ticket, in any language, to find resolved tickets like it."""

    body: Annotated[str, msgspec.Meta(min_length=1, examples=[EXAMPLE_TICKET["body"]])]
    subject: Annotated[str, msgspec.Meta(examples=[EXAMPLE_TICKET["subject"]])] | None = None
    k: (
        Annotated[int, msgspec.Meta(ge=1, description="How many suggestions (default 5).")] | None
    ) = None
    filters: SuggestFiltersRequest | None = None


class SuggestionResult(KnowledgeEntryResponse):
    """A stored entry like the asked ticket, with how alike they are."""

    score: Annotated[
        float,
        msgspec.Meta(
            description="Cosine similarity of the two tickets' embeddings; rank by it, since "
            "its scale depends on the embedder.",
            examples=[0.82],
        ),
    ]
    duplicates: Annotated[
        list[str],
        msgspec.Meta(description="Source ids of near-identical entries folded into this one."),
    ]


class SuggestResponse(msgspec.Struct):
    suggestions: list[SuggestionResult]
    embedder: Annotated[
        str, msgspec.Meta(examples=["base:multilingual-e5-small:1aabcf172ced606f:192"])
    ]
