"""Request and response bodies of the HTTP API, with the examples shown in the OpenAPI page."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "Alternative",
    "BatchRequest",
    "BatchResponse",
    "Classification",
    "HeadResult",
    "ReloadRequest",
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


class BatchResponse(msgspec.Struct):
    results: list[Classification]


class ReloadRequest(msgspec.Struct, forbid_unknown_fields=True):
    model_dir: (
        Annotated[str, msgspec.Meta(description="Bundle folder; the configured one when absent.")]
        | None
    ) = None
