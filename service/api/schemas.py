"""Request and response bodies of the HTTP API, with the examples shown in the OpenAPI page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "AgentRequest",
    "AgentResponse",
    "Alternative",
    "AssignmentRequest",
    "AssignmentResponse",
    "AvailabilityRequest",
    "BatchRequest",
    "BatchResponse",
    "Classification",
    "FeedbackRequest",
    "FeedbackResponse",
    "HeadResult",
    "KnowledgeEntryRequest",
    "KnowledgeEntryResponse",
    "KnowledgeImportRequest",
    "KnowledgeWriteResponse",
    "KnowledgeWriteResult",
    "PromoteRequest",
    "RegisterRequest",
    "ReloadRequest",
    "RouteRequest",
    "RouteResponse",
    "RoutingCandidate",
    "RoutingResult",
    "SuggestFiltersRequest",
    "SuggestRequest",
    "SuggestResponse",
    "SuggestionResult",
    "TeamRequest",
    "TeamResponse",
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
        list[Literal["suggestions", "routing"]],
        msgspec.Meta(
            description="Extras to answer in the same call: `suggestions` adds similar resolved "
            "tickets (as `POST /v1/suggest` with its defaults), `routing` the ranked teams "
            "and agents (as `POST /v1/route`, without assigning).",
            examples=[["suggestions", "routing"]],
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
    prediction_id: Annotated[
        str,
        msgspec.Meta(
            description="Id of the stored prediction; `POST /v1/feedback` refers to it.",
            examples=["0b6f3c52-8c1e-4d7a-9a55-3f1f4f0d2b7e"],
        ),
    ]
    queue: HeadResult | None = None
    priority: HeadResult | None = None
    type: HeadResult | None = None
    other_heads: dict[str, HeadResult] = msgspec.field(default_factory=dict)
    suggestions: list[SuggestionResult] | None = None
    routing: RoutingResult | None = None


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


# Routing.

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, examples=["anna.schmidt"])]
QueueName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, examples=["IT Support"])]


class RoutingCandidate(msgspec.Struct):
    """A team or an agent proposed for the ticket, with its score and why."""

    name: Name
    score: Annotated[float, msgspec.Meta(ge=0, examples=[0.62])]
    reason: Annotated[
        str,
        msgspec.Meta(examples=["queue IT Support 0.91 (level 4/5), speaks de, 2 of 5 slots used"]),
    ]
    team: str | None = None


class AssignmentResponse(msgspec.Struct):
    id: int
    agent: Name
    assigned_at: datetime
    ticket_id: str | None = None
    prediction_id: str | None = None
    queue: str | None = None
    priority: str | None = None
    language: str | None = None
    closed_at: datetime | None = None


class RoutingResult(msgspec.Struct):
    policy: Annotated[str, msgspec.Meta(examples=["skills"])]
    teams: list[RoutingCandidate]
    agents: Annotated[
        list[RoutingCandidate],
        msgspec.Meta(description="Agents who can take the ticket now, best first; empty when "
        "no available agent has a free slot and the skills for it."),
    ]
    assignment: AssignmentResponse | None = None


class RouteRequest(TicketRequest, forbid_unknown_fields=True):
    """A ticket to route: classified first, then ranked; ``assign`` gives it to the best."""

    assign: Annotated[
        bool, msgspec.Meta(description="Assign the ticket to the first agent proposed.")
    ] = False
    ticket_id: (
        Annotated[str, msgspec.Meta(max_length=255, description="The ticket's id in its system.")]
        | None
    ) = None
    policy: Literal["skills", "round-robin", "least-loaded"] | None = None


class RouteResponse(msgspec.Struct):
    classification: Classification
    routing: RoutingResult


class TeamRequest(msgspec.Struct, forbid_unknown_fields=True):
    queues: Annotated[list[QueueName], msgspec.Meta(examples=[["IT Support", "Technical Support"]])]


class TeamResponse(msgspec.Struct):
    name: Name
    queues: list[str]


SkillLevel = Annotated[int, msgspec.Meta(ge=1, le=5)]


class AgentRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An agent's profile; the load is kept by the service from assignments."""

    skills: Annotated[
        dict[QueueName, SkillLevel],
        msgspec.Meta(
            description="Queue -> level, 1 (can handle) to 5 (expert).",
            examples=[{"IT Support": 4, "Technical Support": 2}],
        ),
    ]
    languages: Annotated[list[LanguageCode], msgspec.Meta(min_length=1, examples=[["de", "en"]])]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    available: bool = True
    team: Name | None = None


class AgentResponse(msgspec.Struct):
    name: Name
    skills: dict[str, int]
    languages: list[str]
    capacity: int
    available: bool
    load: int
    team: str | None = None
    speed: dict[str, float] = msgspec.field(default_factory=dict)


class AvailabilityRequest(msgspec.Struct, forbid_unknown_fields=True):
    available: bool


class AssignmentRequest(msgspec.Struct, forbid_unknown_fields=True):
    agent: Name
    ticket_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    prediction_id: Annotated[str, msgspec.Meta(max_length=36)] | None = None
    queue: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    priority: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    language: LanguageCode | None = None


# Feedback and models.


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What the agent did with a prediction."""

    prediction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]
    labels: Annotated[
        dict[str, Annotated[str, msgspec.Meta(min_length=1, max_length=255)]],
        msgspec.Meta(
            description="Head -> the label the agent chose; a differing one is a correction.",
            examples=[{"queue": "Billing and Payments", "priority": "high"}],
        ),
    ] = msgspec.field(default_factory=dict)
    suggestion_used: (
        Annotated[
            str,
            msgspec.Meta(max_length=255, description="source_id of the suggestion used."),
        ]
        | None
    ) = None
    resolution: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=20_000,
                description="How the ticket was resolved; with it, the ticket joins the "
                "knowledge base.",
            ),
        ]
        | None
    ) = None
    agent: Name | None = None
    ticket_id: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=255,
                description="The ticket's id in its system: its knowledge-base source_id.",
            ),
        ]
        | None
    ) = None


class FeedbackResponse(msgspec.Struct):
    id: int
    prediction_id: str
    corrected: list[str]
    knowledge: Annotated[
        str,
        msgspec.Meta(
            description="What became of the resolution in the knowledge base: created, "
            "updated, unchanged, or why it was not stored."
        ),
    ]


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    force: Annotated[
        bool, msgspec.Meta(description="Promote even if the shadow evaluation finds it worse.")
    ] = False


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    model_dir: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
