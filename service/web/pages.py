"""The pages: self-service (``/help``), the agent view (``/agent``), the dashboard
(``/dashboard``) and reports (``/reports``), rendered on the server from Jinja templates.

Handlers read and shape; the work is done by the services the API uses (classification,
suggestions, routing, feedback) and by ``Insights`` and ``SelfServiceDesk``. The agent
view's actions (confirming or correcting a label, marking a suggestion as used) are sent by
the page's script to ``POST /v1/feedback``, the API every other client uses.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import Cookie, State
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.middleware.base import DefineMiddleware
from litestar.params import Body
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler
from markupsafe import Markup

from service.api.access import ApiKeyVerifier
from service.api.checks import check_ticket_text
from service.api.classification import classifier_of, classify_requests
from service.api.knowledge import suggest_for_predictions
from service.api.schemas import TicketRequest
from service.errors import InputError, ServiceError
from service.inference.classifier import Ticket
from service.learning.predictions import PredictionRecord
from service.settings import Settings
from service.web import charts
from service.web.access import (
    WEB_PATHS,
    NotAllowedError,
    SignInRequiredError,
    Visitor,
    session_config,
    visitor_of,
)
from service.web.i18n import LANGUAGE_COOKIE, catalogs, choose_language
from service.web.insights import Period, Summary, rate
from service.web.selfservice import new_ticket_id, suggest_in_language

__all__ = ["WebAppConfig", "web_app_config"]

HERE = Path(__file__).parent
SUGGESTIONS_SHOWN = 3
RECENT_TICKETS = 50
LONGEST_REPORT_DAYS = 366


# Page plumbing: the visitor's language, the strings and the common context.


def _language(request: Request[Any, Any, Any]) -> tuple[str, bool]:
    """The page's language, and whether it was just chosen (to remember it)."""
    settings: Settings = request.app.state.settings
    asked = request.query_params.get("lang")
    chosen = choose_language(
        asked,
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language", ""),
        settings.web.default_language,
    )
    return chosen, asked == chosen


def page(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    language, chosen = _language(request)
    strings = catalogs()

    def t(key: str, **values: Any) -> str:
        return strings.translate(language, key, **values)

    cookies = [Cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax")]
    return Template(
        template_name=template,
        context={
            "t": t,
            "lang": language,
            "languages": strings.languages,
            "visitor": visitor,
            "path": request.url.path,
            "self_service": request.app.state.settings.web.self_service,
            **context,
        },
        status_code=status_code,
        media_type=MediaType.HTML,
        cookies=cookies if chosen else [],
    )


def _form_text(value: str, where: str, limit: int) -> str:
    if "\x00" in value:
        raise InputError(f"{where}: expected text, found a NUL character")
    if len(value) > limit:
        raise InputError(f"{where}: expected at most {limit} characters, found {len(value)}")
    return value.strip()


# Self-service.


class HelpQuery(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(max_length=20_000)]
    subject: Annotated[str, msgspec.Meta(max_length=1_000)] = ""


class HelpSolved(msgspec.Struct, forbid_unknown_fields=True):
    source_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    language: Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}$")] | None = None


@dataclass
class HelpTicketForm:
    body: str = ""
    subject: str = ""
    requester: str = ""


async def _self_service_visitor(request: Request[Any, Any, Any]) -> Visitor:
    settings: Settings = request.app.state.settings
    if settings.web.self_service == "off":
        raise NotFoundException("the self-service page is switched off (TRIAGE_WEB_SELF_SERVICE)")
    role = "predict" if settings.web.self_service == "login" else None
    return await visitor_of(request, role)


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Redirect:
    settings: Settings = request.app.state.settings
    return Redirect("/agent" if settings.web.self_service == "off" else "/help")


@get("/help", include_in_schema=False)
async def help_page(request: Request[Any, Any, Any]) -> Template:
    """Describe a problem, see past answers appear, file a ticket if none helps."""
    visitor = await _self_service_visitor(request)
    return page(request, visitor, "help.html.j2", form=HelpTicketForm(), error=None)


@post("/help/suggest", include_in_schema=False, status_code=200)
async def help_suggest(request: Request[Any, Any, Any], state: State, data: HelpQuery) -> Any:
    """Past resolutions for what the visitor has typed so far (called as they type)."""
    await _self_service_visitor(request)
    if len(data.body.strip()) + len(data.subject.strip()) < 12:
        return {"language": None, "suggestions": []}
    base = state.knowledge.require()
    language, found = await asyncio.to_thread(
        suggest_in_language, base, data.subject, data.body, SUGGESTIONS_SHOWN
    )
    return {
        "language": language,
        "suggestions": [
            {
                "source_id": s.record.source_id,
                "subject": s.record.subject,
                "resolution": s.record.resolution,
                "language": s.record.language,
                "score": round(s.score, 4),
            }
            for s in found
        ],
    }


@post("/help/solved", include_in_schema=False, status_code=200)
async def help_solved(request: Request[Any, Any, Any], state: State, data: HelpSolved) -> Any:
    """The visitor found their answer: a deflected ticket."""
    await _self_service_visitor(request)
    await asyncio.to_thread(state.desk.record_solved, data.source_id, data.language)
    return {"recorded": "solved"}


@post("/help/tickets", include_in_schema=False, status_code=200)
async def help_file_ticket(
    request: Request[Any, Any, Any],
    state: State,
    data: Annotated[HelpTicketForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Template:
    """File the ticket: classified, routed to an agent with a free slot, and stored."""
    visitor = await _self_service_visitor(request)
    settings: Settings = state.settings
    try:
        subject = _form_text(data.subject, "subject", 1_000)
        body = _form_text(data.body, "body", settings.max_text_chars)
        requester = _form_text(data.requester, "requester", 255) or None
        if not body:
            raise InputError("body: expected a description of the problem, found nothing")
        check_ticket_text("ticket", subject, body, settings.max_text_chars)
    except InputError as exc:
        return page(request, visitor, "help.html.j2", 400, form=data, error=str(exc))

    answers, predictions = await classify_requests(
        state, [TicketRequest(body=body, subject=subject or None)]
    )
    ticket_id = new_ticket_id()
    decision = await asyncio.to_thread(
        lambda: state.routing.route(
            predictions[0],
            assign=True,
            ticket_id=ticket_id,
            prediction_id=answers[0].prediction_id,
        )
    )
    assignment = decision.assignment
    ticket = await asyncio.to_thread(
        state.desk.file_ticket,
        ticket_id,
        subject,
        body,
        requester,
        predictions[0].language,
        answers[0].prediction_id,
        assignment.id if assignment else None,
    )
    team = decision.agents[0].team if assignment and decision.agents else None
    return page(
        request,
        visitor,
        "help_filed.html.j2",
        ticket=ticket,
        classification=answers[0],
        team=team or (decision.teams[0].agent if decision.teams else None),
    )


# Sign-in.


@dataclass
class LoginForm:
    key: str = ""
    next: str = "/agent"


def _safe_next(target: str) -> str:
    """Only this server's own pages (no scheme, no other host)."""
    return target if target.startswith("/") and not target.startswith("//") else "/agent"


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Template:
    visitor = await visitor_of(request)
    target = _safe_next(request.query_params.get("next", "/agent"))
    return page(request, visitor, "login.html.j2", next=target, error=None)


@post("/login", include_in_schema=False, status_code=200)
async def login(
    request: Request[Any, Any, Any],
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """Check the key and keep it in the encrypted session cookie."""
    verifier: ApiKeyVerifier = request.app.state.verifier
    key = data.key.strip()
    identity = await verifier.verify(key) if key and "\x00" not in key else None
    target = _safe_next(data.next)
    if identity is None:
        visitor = Visitor(None, request.app.state.settings.auth.enabled)
        return page(
            request,
            visitor,
            "login.html.j2",
            401,
            next=target,
            error="login.unknown_key",
        )
    request.set_session({"key": key})
    return Redirect(target)


@post("/logout", include_in_schema=False, status_code=200)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    request.clear_session()
    return Redirect("/help")


# The agent view.


@dataclass
class PasteForm:
    body: str = ""
    subject: str = ""


@get("/agent", include_in_schema=False)
async def agent_tickets(request: Request[Any, Any, Any], state: State) -> Template:
    """Recent tickets (those filed through self-service marked), or paste a new one."""
    visitor = await visitor_of(request, "agent")
    review_only = request.query_params.get("review") == "1"
    recent = await asyncio.to_thread(
        state.predictions.recent, RECENT_TICKETS, True if review_only else None
    )
    filed = await asyncio.to_thread(state.desk.recent_prediction_ids)
    return page(
        request,
        visitor,
        "agent_list.html.j2",
        tickets=recent,
        filed=filed,
        review_only=review_only,
        error=None,
    )


@post("/agent/tickets", include_in_schema=False, status_code=200)
async def agent_paste(
    request: Request[Any, Any, Any],
    state: State,
    data: Annotated[PasteForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """Classify a pasted ticket and open it."""
    visitor = await visitor_of(request, "agent")
    settings: Settings = state.settings
    try:
        subject = _form_text(data.subject, "subject", 1_000)
        body = _form_text(data.body, "body", settings.max_text_chars)
        if not body:
            raise InputError("body: expected the ticket's text, found nothing")
    except InputError as exc:
        recent = await asyncio.to_thread(state.predictions.recent, RECENT_TICKETS)
        return page(
            request,
            visitor,
            "agent_list.html.j2",
            400,
            tickets=recent,
            filed=set(),
            review_only=False,
            error=str(exc),
        )
    answers, _ = await classify_requests(state, [TicketRequest(body=body, subject=subject or None)])
    return Redirect(f"/agent/tickets/{answers[0].prediction_id}")


@dataclass(frozen=True)
class HeadView:
    """One head of a stored prediction, for the agent: the label, its runners-up, all labels
    to choose from, and what an agent last chose."""

    head: str
    label: str
    probability: float
    alternatives: list[tuple[str, float]]
    choices: list[str]
    chosen: str | None


def _head_views(
    record: PredictionRecord, heads: dict[str, list[str]], chosen: dict[str, str]
) -> list[HeadView]:
    return [
        HeadView(
            head,
            label,
            record.probabilities.get(head, 0.0),
            record.alternatives.get(head, []),
            heads.get(head, [label]),
            chosen.get(head),
        )
        for head, label in record.labels.items()
    ]


@get("/agent/tickets/{prediction_id:str}", include_in_schema=False)
async def agent_ticket(request: Request[Any, Any, Any], state: State, prediction_id: str) -> Any:
    """One ticket: predictions with confidences, suggested resolutions, routing, feedback."""
    visitor = await visitor_of(request, "agent")
    record = await asyncio.to_thread(state.predictions.get, prediction_id[:36])
    if record is None:
        return page(request, visitor, "message.html.j2", 404, message="agent.no_ticket")
    classifier = classifier_of(state)
    feedback = await asyncio.to_thread(state.feedback.for_prediction, record.id)
    chosen: dict[str, str] = {}
    for item in feedback:
        chosen.update({head: label for head, label in item.labels.items() if label})
    filed = await asyncio.to_thread(state.desk.ticket_for_prediction, record.id)

    # The model runs again on the stored text for suggestions and the routing proposal;
    # the labels shown are the stored prediction, the one feedback refers to.
    suggestions: list[Any] = []
    routing = None
    if record.body is not None:
        ticket = Ticket(record.body, record.subject or None, record.language)
        prediction = (await classifier.classify([ticket]))[0]
        if state.knowledge.ready:
            found = await suggest_for_predictions(
                state.knowledge, state.settings, [record.subject], [record.body], [prediction]
            )
            suggestions = found[0]
        routing = await asyncio.to_thread(state.routing.route, prediction)
    assignment = None
    if filed and filed.assignment_id is not None:
        assignment = next(
            (
                a
                for a in await asyncio.to_thread(state.routing.directory.open_assignments)
                if a.id == filed.assignment_id
            ),
            None,
        )
    return page(
        request,
        visitor,
        "agent_ticket.html.j2",
        record=record,
        heads=_head_views(record, classifier.describe()["heads"], chosen),
        suggestions=suggestions,
        routing=routing,
        assignment=assignment,
        filed=filed,
        feedback=feedback,
        used={item.suggestion_used for item in feedback if item.suggestion_used},
    )


# Dashboard and reports.


def _period(request: Request[Any, Any, Any], default_days: int = 30) -> Period:
    """From ``first`` and ``last`` (ISO dates), or the last ``days`` days."""
    query = request.query_params
    try:
        if query.get("first") or query.get("last"):
            last = date.fromisoformat(query.get("last") or date.today().isoformat())
            first = date.fromisoformat(query.get("first") or (last - timedelta(29)).isoformat())
        else:
            days = int(query.get("days", default_days))
            if not 1 <= days <= LONGEST_REPORT_DAYS:
                raise ValueError(days)
            return Period.last_days(days)
    except ValueError as exc:
        raise InputError(
            "first, last: expected dates like 2026-11-01 (or days: 1.."
            f"{LONGEST_REPORT_DAYS}), found {dict(query)}"
        ) from exc
    if first > last or (last - first).days >= LONGEST_REPORT_DAYS:
        raise InputError(
            f"first, last: expected first on or before last, at most {LONGEST_REPORT_DAYS} "
            f"days apart, found {first} and {last}"
        )
    return Period(first, last)


def _charts(summary: Summary, t: Any) -> dict[str, Markup]:
    days = summary.period.days
    accuracy = {
        head: {
            day: (kept / seen if seen else None)
            for day, (seen, kept) in summary.accuracy.by_day.get(head, {}).items()
        }
        for head in summary.accuracy.checked
    }
    review_share = {
        t("dashboard.low_confidence"): {
            day: (summary.needs_review_by_day[day] / count if count else None)
            for day, count in summary.volume_by_day.items()
        }
    }
    unit = t("dashboard.tickets")
    drawn = {
        "queue": charts.stacked_days_chart(t("dashboard.by_queue"), days, summary.by_queue, unit),
        "priority": charts.stacked_days_chart(
            t("dashboard.by_priority"), days, summary.by_priority, unit
        ),
        "language": charts.stacked_days_chart(
            t("dashboard.by_language"), days, summary.by_language, unit
        ),
        "review": charts.lines_chart(t("dashboard.low_confidence_over_time"), days, review_share),
        "accuracy": charts.lines_chart(t("dashboard.accuracy_over_time"), days, accuracy),
    }
    if summary.teams:
        drawn["teams"] = charts.bar_chart(
            t("dashboard.team_load"),
            {team.team: team.load for team in summary.teams},
            {team.team: team.capacity for team in summary.teams},
            (t("dashboard.open"), t("dashboard.capacity")),
        )
    return {name: Markup(svg) for name, svg in drawn.items()}


async def _lead_page(request: Request[Any, Any, Any], state: State, template: str) -> Template:
    visitor = await visitor_of(request, "lead")
    period = _period(request)
    summary = await asyncio.to_thread(state.insights.summary, period)
    issues = await asyncio.to_thread(state.insights.cached_recurring_issues)
    language, _ = _language(request)
    strings = catalogs()

    def t(key: str, **values: Any) -> str:
        return strings.translate(language, key, **values)

    drawn = await asyncio.to_thread(_charts, summary, t)
    return page(
        request,
        visitor,
        template,
        summary=summary,
        issues=issues,
        charts=drawn,
        rate=rate,
        heads=sorted(summary.accuracy.checked),
    )


@get("/dashboard", include_in_schema=False)
async def dashboard(request: Request[Any, Any, Any], state: State) -> Template:
    """Where the work comes from and how well the model does, at a glance."""
    return await _lead_page(request, state, "dashboard.html.j2")


@get("/reports", include_in_schema=False)
async def report(request: Request[Any, Any, Any], state: State) -> Template:
    """The dashboard's figures for a date range as a printable page."""
    return await _lead_page(request, state, "report.html.j2")


def report_csv(summary: Summary) -> str:
    """The figures in long form: one row per section, group and day (day empty for totals)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "group", "day", "count", "share"])
    for day, count in summary.volume_by_day.items():
        review = summary.needs_review_by_day[day]
        writer.writerow(["tickets", "all", day.isoformat(), count, ""])
        writer.writerow(
            [
                "low_confidence",
                "all",
                day.isoformat(),
                review,
                round(review / count, 4) if count else "",
            ]
        )
    for section, series in (
        ("tickets_by_queue", summary.by_queue),
        ("tickets_by_priority", summary.by_priority),
        ("tickets_by_language", summary.by_language),
    ):
        for group, days in series.items():
            for day, count in sorted(days.items()):
                writer.writerow([section, group, day.isoformat(), count, ""])
    accuracy = summary.accuracy
    for head in sorted(accuracy.checked):
        share = accuracy.accuracy(head)
        writer.writerow(
            [f"accuracy_{head}", "all", "", accuracy.checked[head], round(share or 0, 4)]
        )
        for language, (seen, kept) in sorted(accuracy.by_language.get(head, {}).items()):
            writer.writerow(
                [f"accuracy_{head}", f"language:{language}", "", seen, round(kept / seen, 4)]
            )
        for day, (seen, kept) in sorted(accuracy.by_day.get(head, {}).items()):
            writer.writerow(
                [f"accuracy_{head}", "all", day.isoformat(), seen, round(kept / seen, 4)]
            )
    writer.writerow(["feedback", "all", "", summary.feedback, ""])
    writer.writerow(["corrections", "all", "", summary.corrections, ""])
    deflection = summary.deflection_rate
    writer.writerow(["self_service_solved", "all", "", summary.solved, ""])
    writer.writerow(["self_service_filed", "all", "", summary.filed, ""])
    writer.writerow(
        [
            "self_service_deflection",
            "all",
            "",
            summary.solved + summary.filed,
            "" if deflection is None else round(deflection, 4),
        ]
    )
    for team in summary.teams:
        load_share = round(team.load / team.capacity, 4) if team.capacity else ""
        writer.writerow(["team_load", team.team, "", team.load, load_share])
    return buffer.getvalue()


@get("/reports/export.csv", include_in_schema=False)
async def report_download(request: Request[Any, Any, Any], state: State) -> Response[str]:
    await visitor_of(request, "lead")
    period = _period(request)
    summary = await asyncio.to_thread(state.insights.summary, period)
    name = f"ticket-triage-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return Response(
        report_csv(summary),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# Errors on pages are pages.


def sign_in_first(request: Request[Any, Any, Any], exc: SignInRequiredError) -> Response[Any]:
    return Redirect(exc.login_url)


def not_allowed(request: Request[Any, Any, Any], exc: NotAllowedError) -> Response[Any]:
    visitor = Visitor(exc.identity, True)
    return page(
        request, visitor, "message.html.j2", 403, message="access.missing_role", role=exc.role
    )


def is_page(request: Request[Any, Any, Any]) -> bool:
    """A browser asking for a page (not a page's script asking for JSON)."""
    return request.method == "GET" or "form" in request.headers.get("content-type", "")


@dataclass(frozen=True)
class WebAppConfig:
    """What ``create_app`` adds to the application for the pages."""

    route_handlers: list[ControllerRouterHandler]
    template_config: TemplateConfig[JinjaTemplateEngine]
    session: DefineMiddleware
    exception_handlers: dict[int | type[Exception], Any]
    page_paths: list[str]


def web_app_config(settings: Settings) -> WebAppConfig:
    return WebAppConfig(
        route_handlers=[
            home,
            help_page,
            help_suggest,
            help_solved,
            help_file_ticket,
            login_page,
            login,
            logout,
            agent_tickets,
            agent_paste,
            agent_ticket,
            dashboard,
            report,
            report_download,
            create_static_files_router(
                path="/static", directories=[HERE / "static"], include_in_schema=False
            ),
        ],
        template_config=TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine),
        session=session_config(settings).middleware,
        exception_handlers={SignInRequiredError: sign_in_first, NotAllowedError: not_allowed},
        page_paths=WEB_PATHS,
    )


def service_error_page(request: Request[Any, Any, Any], exc: ServiceError) -> Template | None:
    """A domain error on a page a person is looking at, as a page; ``None`` for scripts."""
    if not is_page(request):
        return None
    visitor = Visitor(None, request.app.state.settings.auth.enabled)
    return page(request, visitor, "message.html.j2", exc.status_code, message_text=str(exc))
