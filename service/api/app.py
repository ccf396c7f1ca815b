"""The Litestar application: routes, error mapping, lifecycle and metrics.

Handlers validate, delegate to ``TicketClassifier`` (and, in ``service.api.knowledge``,
to the knowledge base) and shape the answer; the errors of ``service.errors``
become HTTP answers in one place, ``service_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import TooManyRequestsException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from service import __version__
from service.api.access import (
    ApiKeyVerifier,
    access_middleware,
    check_scope,
    rate_limit_store,
    rate_limited,
    require_scope,
)
from service.api.classification import classifier_of, classify_requests
from service.api.connectors import ROUTES as CONNECTOR_ROUTES
from service.api.knowledge import ROUTES as KNOWLEDGE_ROUTES
from service.api.learning import ROUTES as LEARNING_ROUTES
from service.api.learning import model_to_serve, run_learning_upkeep
from service.api.responses import SECURITY_SCHEME, protected, public
from service.api.routing import ROUTES as ROUTING_ROUTES
from service.api.routing import routing_result
from service.api.schemas import (
    BatchRequest,
    BatchResponse,
    Classification,
    ReloadRequest,
    RouteRequest,
    RouteResponse,
    TicketRequest,
)
from service.connectors import ConnectorHub, TriageEngine
from service.errors import InputError, ModelLoadError, ServiceError
from service.inference.bundle import BundleError, ModelBundle
from service.inference.classifier import TicketClassifier
from service.knowledge.service import KnowledgeService
from service.learning.feedback import FeedbackStore
from service.learning.predictions import PredictionLog
from service.learning.registry import ModelRegistry
from service.routing import RoutingDirectory, RoutingService
from service.security.keys import ApiKeyStore
from service.settings import Settings
from service.storage import create_database_engine, upgrade_schema
from service.web.insights import Insights
from service.web.pages import service_error_page, web_app_config
from service.web.selfservice import SelfServiceDesk

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@post(
    "/v1/classify",
    tags=["classification"],
    status_code=HTTP_200_OK,
    **protected("predict", 413, 503),
)
async def classify(state: State, data: TicketRequest) -> Classification:
    """Predict queue, priority and type of one ticket, with calibrated probabilities."""
    answers, _ = await classify_requests(state, [data])
    return answers[0]


@post(
    "/v1/classify/batch",
    tags=["classification"],
    status_code=HTTP_200_OK,
    **protected("predict", 413, 503),
)
async def classify_batch(state: State, data: BatchRequest) -> BatchResponse:
    """Classify several tickets in one call; results come in the order of the tickets."""
    limit = state.settings.max_batch_request
    if len(data.tickets) > limit:
        raise InputError(f"tickets: expected at most {limit} per call, found {len(data.tickets)}")
    answers, _ = await classify_requests(state, data.tickets)
    return BatchResponse(results=answers)


@post(
    "/v1/route",
    tags=["routing"],
    status_code=HTTP_200_OK,
    **protected("predict", 413, 503),
)
async def route(request: Request[Any, Any, Any], state: State, data: RouteRequest) -> RouteResponse:
    """Classify a ticket and rank the teams and agents for it; with `assign`, give it to the
    first agent (needs the `routing:write` scope too)."""
    if data.assign:
        check_scope(request.scope, "routing:write")
    # The routing is this answer's own part; routing it again as an extra would repeat it.
    ticket = msgspec.structs.replace(data, include=[i for i in data.include if i != "routing"])
    answers, predictions = await classify_requests(state, [ticket])
    decision = await asyncio.to_thread(
        lambda: state.routing.route(
            predictions[0],
            policy=data.policy,
            assign=data.assign,
            ticket_id=data.ticket_id,
            prediction_id=answers[0].prediction_id,
        )
    )
    return RouteResponse(classification=answers[0], routing=routing_result(decision))


@get("/v1/models", tags=["models"], **protected("predict", 503))
async def describe_model(state: State) -> dict[str, Any]:
    """The loaded model: name, version, labels per head and its test metrics."""
    return classifier_of(state).describe()


@post(
    "/v1/models/reload",
    tags=["models"],
    status_code=HTTP_200_OK,
    **protected("admin", 413, 422, 503, no_timeout=True),
)
async def reload_model(state: State, data: ReloadRequest | None = None) -> dict[str, Any]:
    """Load a bundle and swap it in; requests in flight finish on the previous model."""
    classifier = classifier_of(state)
    folder = Path(data.model_dir) if data and data.model_dir else None
    try:
        loaded = await classifier.reload(folder)
    except (BundleError, OSError) as exc:
        raise ModelLoadError(f"could not load the bundle, the previous model stays: {exc}") from exc
    # A reload is a promotion without shadow evaluation: the registry follows it, so that
    # this process and the others keep serving it.
    record = await asyncio.to_thread(state.registry.register, loaded.bundle.directory)
    await asyncio.to_thread(state.registry.activate, record.version)
    await state.knowledge.model_changed(classifier)
    return classifier.describe()


@get("/health", tags=["operations"], **public())
async def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@get("/ready", tags=["operations"], **public(503))
async def ready(state: State) -> Response[dict[str, str]]:
    """The model is loaded and warmed up and the knowledge base is open (503 before)."""
    if state.classifier.ready and state.knowledge.ready:
        return Response({"status": "ready"})
    return Response(
        {"status": "loading", "knowledge": state.knowledge.status},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


class MetricsController(PrometheusController):
    """Prometheus' text exposition at ``/metrics``; for scrapers, not part of the API schema."""

    include_in_schema = False


def service_error(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    """Every domain error becomes its HTTP status with a message saying what to change (as
    a page for a person looking at one)."""
    if exc.status_code >= 500:
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
    if not request.url.path.startswith("/v1/") and request.app.state.settings.web.enabled:
        shown = service_error_page(request, exc)
        if shown is not None:
            return shown
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return Response(
        {"status_code": exc.status_code, "detail": str(exc)},
        status_code=exc.status_code,
        headers=headers,
        media_type=MediaType.JSON,
    )


def too_deeply_nested(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """JSON nested deeper than the parser's recursion limit is a malformed request."""
    return service_error(
        request, InputError("request body: expected a JSON object, found JSON nested too deeply")
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Anything unforeseen: logged with its traceback (redacted), answered without it."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(
        {"status_code": 500, "detail": "internal error; the server log has the details"},
        status_code=500,
        media_type=MediaType.JSON,
    )


def warn_about_access(settings: Settings, keys: ApiKeyStore) -> None:
    """Say at start-up what would let anyone in, or keep everyone out."""
    if not settings.auth.enabled:
        if settings.host not in LOOPBACK_HOSTS:
            logger.warning(
                "authentication is OFF (TRIAGE_AUTH_ENABLED=false) and the server listens "
                "on %s: anyone who reaches it can classify, read and change the knowledge "
                "base and reload models",
                settings.host,
            )
        return
    if keys.count_active() == 0:
        logger.warning(
            "no API keys exist: every /v1 request will be refused with 401; make one with "
            "`python -m service keys create --name NAME --scope predict`"
        )


def create_app(settings: Settings | None = None, *, load_model: bool = True) -> Litestar:
    """The application; the model loads in the background once the server is up."""
    settings = settings or Settings.from_env()
    classifier = TicketClassifier(settings)
    engine = create_database_engine(settings.resolved_database_url)
    knowledge = KnowledgeService(settings, engine)
    keys = ApiKeyStore(engine)
    verifier = ApiKeyVerifier(keys, settings.auth.cache_s)
    predictions = PredictionLog(engine, store_text=not settings.privacy.redact_knowledge)
    registry = ModelRegistry(engine)
    web = web_app_config(settings) if settings.web.enabled else None
    feedback = FeedbackStore(engine)
    routing = RoutingService(RoutingDirectory(engine), settings.routing)
    triage = TriageEngine(settings, classifier, predictions, knowledge, routing, feedback)
    connectors = ConnectorHub(settings, engine, triage)
    state = State(
        {
            "settings": settings,
            "verifier": verifier,
            "desk": SelfServiceDesk(engine),
            "insights": Insights(engine, settings.web),
            "classifier": classifier,
            "knowledge": knowledge,
            "predictions": predictions,
            "feedback": feedback,
            "registry": registry,
            "routing": routing,
            "connectors": connectors,
        }
    )

    async def start() -> None:
        model_dir = await asyncio.to_thread(model_to_serve, settings, registry)
        await classifier.start(model_dir)
        await knowledge.start(classifier)
        await run_learning_upkeep(state)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # A missing or broken bundle or an unreachable database stops start-up here; the
        # slower model warm-up and index loading run in the background while /health
        # already answers.
        bundle = ModelBundle.load(settings.model_dir)
        # A mapping file naming labels the model does not have stops start-up here.
        connectors.configure(bundle.heads)
        await asyncio.to_thread(upgrade_schema, engine)
        await asyncio.to_thread(warn_about_access, settings, keys)
        await predictions.start()
        await connectors.start()
        loading = asyncio.create_task(start()) if load_model else None
        try:
            yield
        finally:
            for task in (loading, state.get("learning_upkeep")):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await connectors.stop()
            await knowledge.stop()
            await classifier.stop()
            await predictions.stop()
            engine.dispose()

    prometheus = PrometheusConfig(app_name="ticket_triage", group_path=True)
    return Litestar(
        route_handlers=[
            classify,
            classify_batch,
            describe_model,
            reload_model,
            health,
            ready,
            route,
            *KNOWLEDGE_ROUTES,
            *ROUTING_ROUTES,
            *LEARNING_ROUTES,
            *(web.route_handlers if web else []),
            *CONNECTOR_ROUTES,
            MetricsController,
        ],
        state=state,
        lifespan=[lifespan],
        middleware=[
            prometheus.middleware,
            *access_middleware(
                settings,
                verifier,
                session=web.session if web else None,
                page_paths=web.page_paths if web else None,
            ),
        ],
        guards=[require_scope],
        stores={"rate_limit": rate_limit_store(settings)},
        exception_handlers={
            ServiceError: service_error,
            TooManyRequestsException: rate_limited,
            RecursionError: too_deeply_nested,
            HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
            **(web.exception_handlers if web else {}),
        },
        template_config=web.template_config if web else None,
        request_max_body_size=settings.max_body_bytes,
        # Logging is configured once, by the process (service.security.privacy's redacting
        # handler); Litestar's default would replace the root logger's handlers.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Ticket Triage",
            version=__version__,
            description="Multilingual ticket classification (queue, priority and type) and "
            "suggestions of resolutions from similar past tickets, across languages.",
            render_plugins=[SwaggerRenderPlugin()],
            path="/docs",
            components=Components(
                security_schemes={
                    SECURITY_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key from `python -m service keys create`, as "
                        "'Authorization: Bearer <key>' (or in an 'X-API-Key' header).",
                    )
                }
            ),
        ),
    )
