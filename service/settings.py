"""Service settings: typed objects, read once from ``TRIAGE_``-prefixed variables.

``Settings`` holds how the service runs and, per concern, nested objects with
prefixes of their own (``KnowledgeSettings``: ``TRIAGE_KNOWLEDGE_*``). Every
field is validated when the object is built, so a bad value stops the server
at start-up with a message naming the variable, instead of failing on the first
request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

__all__ = [
    "PREFIX",
    "AuthSettings",
    "ConnectorSettings",
    "JiraSettings",
    "KnowledgeSettings",
    "LearningSettings",
    "OtoboSettings",
    "PrivacySettings",
    "RateLimitSettings",
    "RoutingSettings",
    "Settings",
    "SettingsError",
    "SystemSettings",
    "WebSettings",
    "WebhookSettings",
    "ZammadSettings",
]

PREFIX = "TRIAGE_"
PROVIDERS = ("auto", "cpu", "cuda")
VARIANTS = ("fp32", "int8")
EMBEDDERS = ("base", "bundle", "use")
INDEX_DTYPES = ("f32", "f16", "i8")
RATE_UNITS = ("second", "minute", "hour", "day")
ROUTING_POLICIES = ("skills", "round-robin", "least-loaded")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A setting is missing or out of range; the message names the variable."""


class EnvironmentSettings:
    """Reading and checking of a frozen settings dataclass from prefixed variables."""

    prefix: ClassVar[str] = PREFIX

    def _check(self, checks: list[tuple[bool, str]]) -> None:
        """Raise for the first failed ``(ok, "FIELD: expected ...")`` pair."""
        secret = {item.name for item in dataclasses.fields(self) if not item.repr}  # type: ignore[arg-type]
        for ok, message in checks:
            if not ok:
                name, _, expected = message.partition(": ")
                found = getattr(self, name.lower())
                # A secret is never repeated, not even in an error.
                shown = (
                    f"a value of {len(str(found))} characters"
                    if name.lower() in secret
                    else repr(found)
                )
                raise SettingsError(f"{self.prefix}{name}: {expected}, found {shown}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build from prefixed variables (``os.environ`` by default), then ``overrides``.

        Mappings take ``key=value`` pairs separated by commas, e.g. ``queue=0.6,priority=0.5``.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            if item.name in overrides:
                continue
            default = _default_of(item)
            if isinstance(default, EnvironmentSettings):
                values[item.name] = type(default).from_env(environ)
                continue
            raw = environ.get(cls.prefix + item.name.upper())
            if raw is not None:
                values[item.name] = _parse(
                    cls.prefix + item.name.upper(), raw, default, str(item.type)
                )
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class KnowledgeSettings(EnvironmentSettings):
    """The knowledge base and suggestions; each field is ``TRIAGE_KNOWLEDGE_<NAME>``."""

    prefix: ClassVar[str] = PREFIX + "KNOWLEDGE_"

    #: ``base`` (the bundle's retrieval encoder: its base model before fine-tuning; the
    #: best in the retrieval evaluation, and unchanged by retraining), ``bundle`` (the
    #: served bundle's fine-tuned embedding; every entry is embedded again when another
    #: bundle is loaded) or ``use`` (multilingual Universal Sentence Encoder).
    embedder: str = "base"
    #: Folder of the vector index; ``<TRIAGE_DATA_DIR>/knowledge-index`` when empty.
    index_dir: Path | None = None
    #: Vector precision in the index: ``f16`` (default), ``f32`` or ``i8``.
    index_dtype: str = "f16"
    #: HNSW graph degree; higher is more accurate, bigger and slower to build.
    index_connectivity: int = 16
    #: HNSW candidate list while searching; higher is more accurate and slower.
    index_expansion_search: int = 64
    #: Suggestions returned when a request does not say how many.
    default_k: int = 5
    #: Most suggestions one request may ask for.
    max_k: int = 50
    #: Most entries in one ``POST /v1/knowledge``.
    max_entries_per_request: int = 256
    #: Word overlap (Jaccard of word unigrams and bigrams) from which two suggestions count
    #: as near-identical and are shown as one.
    duplicate_overlap: float = 0.8
    #: A filter leaving at most this many entries is searched exactly, not approximately.
    exact_search_limit: int = 20_000
    #: Seconds between saves of the index to disk (it is also saved at shutdown; what a
    #: crash loses is replayed from the database's change log at the next start).
    save_interval_s: float = 30.0
    #: Seconds between checks for writes by other processes (``knowledge import``).
    sync_interval_s: float = 2.0

    def __post_init__(self) -> None:
        self._check(
            [
                (self.embedder in EMBEDDERS, f"EMBEDDER: expected one of {EMBEDDERS}"),
                (self.index_dtype in INDEX_DTYPES, f"INDEX_DTYPE: expected one of {INDEX_DTYPES}"),
                (4 <= self.index_connectivity <= 128, "INDEX_CONNECTIVITY: expected 4..128"),
                (8 <= self.index_expansion_search <= 4096, "INDEX_EXPANSION_SEARCH: 8..4096"),
                (1 <= self.max_k <= 1000, "MAX_K: expected 1..1000"),
                (1 <= self.default_k <= self.max_k, "DEFAULT_K: expected 1..MAX_K"),
                (self.max_entries_per_request >= 1, "MAX_ENTRIES_PER_REQUEST: expected >= 1"),
                (0 < self.duplicate_overlap <= 1, "DUPLICATE_OVERLAP: expected 0 < x <= 1"),
                (self.exact_search_limit >= 0, "EXACT_SEARCH_LIMIT: expected 0 or more"),
                (self.save_interval_s > 0, "SAVE_INTERVAL_S: expected more than 0"),
                (self.sync_interval_s > 0, "SYNC_INTERVAL_S: expected more than 0"),
            ]
        )


@dataclass(frozen=True)
class AuthSettings(EnvironmentSettings):
    """API keys; each field is ``TRIAGE_AUTH_<NAME>``. Keys are made with ``python -m
    service keys create``."""

    prefix: ClassVar[str] = PREFIX + "AUTH_"

    #: Require an API key on every ``/v1`` route. Switching it off is meant for a service
    #: reachable only from trusted hosts; the server warns when it listens elsewhere.
    enabled: bool = True
    #: Seconds a verified (or unknown) key is remembered before the database is asked
    #: again; also how long a revoked key may keep working.
    cache_s: float = 5.0

    def __post_init__(self) -> None:
        self._check([(0 <= self.cache_s <= 3600, "CACHE_S: expected 0..3600 seconds")])


@dataclass(frozen=True)
class RateLimitSettings(EnvironmentSettings):
    """Requests per API key (per client address when authentication is off); each field is
    ``TRIAGE_RATE_LIMIT_<NAME>``."""

    prefix: ClassVar[str] = PREFIX + "RATE_LIMIT_"

    #: Requests allowed per key in each ``per`` window; 0 switches rate limiting off.
    requests: int = 1200
    #: The window: ``second``, ``minute``, ``hour`` or ``day``.
    per: str = "minute"
    #: ``redis://host:port/db`` to keep the counts in Redis, shared by every replica;
    #: in this process's memory when empty.
    redis_url: str = ""

    def __post_init__(self) -> None:
        self._check(
            [
                (self.requests >= 0, "REQUESTS: expected 0 (off) or more"),
                (self.per in RATE_UNITS, f"PER: expected one of {RATE_UNITS}"),
                (
                    not self.redis_url or self.redis_url.startswith(("redis://", "rediss://")),
                    "REDIS_URL: expected redis://host:port/db or rediss://...",
                ),
            ]
        )


@dataclass(frozen=True)
class PrivacySettings(EnvironmentSettings):
    """Personal data in ticket text; each field is ``TRIAGE_PRIVACY_<NAME>``. Logs are
    always redacted."""

    prefix: ClassVar[str] = PREFIX + "PRIVACY_"

    #: Replace e-mail addresses, phone numbers, IBANs and card numbers by placeholders
    #: (``<EMAIL>``, ``<PHONE>``, ``<IBAN>``, ``<CARD>``) before a ticket is stored in the
    #: knowledge base or embedded for it; stored predictions then keep no text at all.
    redact_knowledge: bool = False
    #: Countries (ISO 3166 codes, comma-separated) whose national phone-number formats are
    #: recognised; numbers written with ``+`` or ``00`` are recognised for every country.
    phone_regions: str = "DE,AT,CH,US,GB,FR,ES,PT,IT,NL"

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.phone_regions.split(",") if part.strip())

    def __post_init__(self) -> None:
        self._check(
            [
                (
                    all(len(r) == 2 and r.isalpha() and r.isupper() for r in self.regions),
                    "PHONE_REGIONS: expected ISO 3166 codes like DE,US",
                )
            ]
        )


@dataclass(frozen=True)
class RoutingSettings(EnvironmentSettings):
    """Who gets a ticket; each field is ``TRIAGE_ROUTING_<NAME>``."""

    prefix: ClassVar[str] = PREFIX + "ROUTING_"

    #: ``skills`` (queue distribution × skill level × language × load × history),
    #: ``round-robin`` or ``least-loaded``.
    policy: str = "skills"
    #: Share of its score an agent keeps for a ticket in a language they do not speak.
    language_penalty: float = 0.35
    #: How much load counts: 0 ignores it, 1 gives a full agent no score.
    load_weight: float = 0.5
    #: Candidates listed per routing answer.
    candidates: int = 3

    def __post_init__(self) -> None:
        self._check(
            [
                (self.policy in ROUTING_POLICIES, f"POLICY: expected one of {ROUTING_POLICIES}"),
                (0 <= self.language_penalty <= 1, "LANGUAGE_PENALTY: expected 0..1"),
                (0 <= self.load_weight <= 1, "LOAD_WEIGHT: expected 0..1"),
                (1 <= self.candidates <= 50, "CANDIDATES: expected 1..50"),
            ]
        )


@dataclass(frozen=True)
class LearningSettings(EnvironmentSettings):
    """Feedback, the model registry and drift; each field is ``TRIAGE_LEARNING_<NAME>``."""

    prefix: ClassVar[str] = PREFIX + "LEARNING_"

    #: Latest tickets with feedback on which a candidate model is compared before promotion.
    shadow_tickets: int = 2000
    #: Seconds between checks whether another process promoted or rolled back a model.
    registry_poll_s: float = 5.0
    #: Population stability index of predicted labels against training above which drift
    #: is reported as an alert.
    drift_threshold: float = 0.2
    #: Predictions in the window below which no drift alert is raised (too few to judge).
    drift_min_predictions: int = 100
    #: Fall of a head's mean confidence below its test-split mean that raises an alert.
    drift_confidence_drop: float = 0.1
    #: Days a stored prediction without feedback is kept (with its ticket text); 0 keeps
    #: them all. Predictions with feedback are kept, as training data.
    prediction_retention_days: int = 90

    def __post_init__(self) -> None:
        self._check(
            [
                (self.shadow_tickets >= 1, "SHADOW_TICKETS: expected 1 or more"),
                (self.registry_poll_s > 0, "REGISTRY_POLL_S: expected more than 0"),
                (self.drift_threshold > 0, "DRIFT_THRESHOLD: expected more than 0"),
                (self.drift_min_predictions >= 1, "DRIFT_MIN_PREDICTIONS: expected 1 or more"),
                (0 < self.drift_confidence_drop < 1, "DRIFT_CONFIDENCE_DROP: expected 0..1"),
                (self.prediction_retention_days >= 0, "PREDICTION_RETENTION_DAYS: 0 or more"),
            ]
        )


SELF_SERVICE_ACCESS = ("open", "login", "off")


@dataclass(frozen=True)
class WebSettings(EnvironmentSettings):
    """The web pages (self-service, agent view, dashboard); each field is ``TRIAGE_WEB_<NAME>``."""

    prefix: ClassVar[str] = PREFIX + "WEB_"

    #: Serve the pages at all (the API is served either way).
    enabled: bool = True
    #: Who may use the self-service page: ``open`` (anyone who reaches the server; visits are
    #: rate limited per address), ``login`` (a key with ``predict``), or ``off``.
    self_service: str = "open"
    #: Seconds a web sign-in lasts.
    session_max_age_s: int = 8 * 3600
    #: Secret (32 or more characters) that encrypts the sign-in cookie; when empty, one is
    #: made on first start and kept in ``<data dir>/web-session-secret``.
    session_secret: str = field(default="", repr=False)
    #: Interface language when the browser asks for none we have.
    default_language: str = "en"
    #: Days of recent tickets the dashboard groups into recurring issues.
    cluster_days: int = 14
    #: Smallest number of tickets that makes a recurring issue.
    cluster_min_tickets: int = 3
    #: Most recent tickets clustered (the newest are kept).
    cluster_max_tickets: int = 3000
    #: Cosine distance (of embeddings less the window's mean) within which tickets join one
    #: issue (0..2): lower makes smaller, tighter issues.
    cluster_distance: float = 0.55
    #: Seconds the dashboard reuses the recurring issues it found (0: find them every time).
    cluster_cache_s: float = 60.0
    #: A recurring issue is emerging when its last day's tickets are at least this many times
    #: its daily rate before (and at least ``cluster_min_tickets``).
    emerging_growth: float = 3.0

    def __post_init__(self) -> None:
        self._check(
            [
                (
                    self.self_service in SELF_SERVICE_ACCESS,
                    f"SELF_SERVICE: expected one of {SELF_SERVICE_ACCESS}",
                ),
                (self.session_max_age_s >= 60, "SESSION_MAX_AGE_S: expected 60 or more"),
                (
                    not self.session_secret or len(self.session_secret) >= 32,
                    "SESSION_SECRET: expected 32 or more characters (or empty)",
                ),
                (1 <= self.cluster_days <= 365, "CLUSTER_DAYS: expected 1..365"),
                (self.cluster_min_tickets >= 2, "CLUSTER_MIN_TICKETS: expected 2 or more"),
                (self.cluster_max_tickets >= 10, "CLUSTER_MAX_TICKETS: expected 10 or more"),
                (0 < self.cluster_distance < 2, "CLUSTER_DISTANCE: expected 0..2"),
                (self.cluster_cache_s >= 0, "CLUSTER_CACHE_S: expected 0 or more"),
                (self.emerging_growth > 1, "EMERGING_GROWTH: expected more than 1"),
            ]
        )


@dataclass(frozen=True)
class SystemSettings(EnvironmentSettings):
    """What every ticket-system connector has; each system's prefix is its own
    (``TRIAGE_ZAMMAD_*``, ``TRIAGE_OTOBO_*``, ``TRIAGE_JIRA_*``). Secrets are left out of
    ``repr``, so that settings can be logged."""

    #: Receive this system's events and write results back to it.
    enabled: bool = False
    #: Base URL of the system, e.g. ``https://zammad.example.com``.
    url: str = ""
    #: YAML file: model labels -> the system's names, what is written back, thresholds.
    mapping: Path = Path("data/connectors/system.yaml")
    #: Log what would be changed in the system instead of changing it.
    dry_run: bool = False
    #: Give the ticket to the agent routing ranks first (``TRIAGE_ROUTING_*``).
    assign: bool = False
    #: Seconds between polls of the system for new tickets; 0 polls only on demand.
    poll_interval_s: float = 0.0
    #: Seconds one call to the system may take.
    timeout_s: float = 10.0
    #: Shared secret that authenticates the system's webhook calls.
    webhook_secret: str = field(default="", repr=False)

    def _system_checks(self) -> list[tuple[bool, str]]:
        return [
            (
                not self.enabled or self.url.startswith(("http://", "https://")),
                "URL: expected the system's base URL, http(s)://host[:port][/path]",
            ),
            (self.poll_interval_s >= 0, "POLL_INTERVAL_S: expected 0 (off) or more seconds"),
            (0 < self.timeout_s <= 300, "TIMEOUT_S: expected 0..300 seconds"),
        ]

    def __post_init__(self) -> None:
        self._check(self._system_checks())


@dataclass(frozen=True)
class ZammadSettings(SystemSettings):
    """The Zammad connector (REST API v1, triggers with webhooks); ``TRIAGE_ZAMMAD_<NAME>``.
    ``WEBHOOK_SECRET`` is the webhook's HMAC-SHA1 signature token."""

    prefix: ClassVar[str] = PREFIX + "ZAMMAD_"

    mapping: Path = Path("data/connectors/zammad.yaml")
    #: An access token of the Zammad user the connector acts as (``ticket.agent``).
    token: str = field(default="", repr=False)
    #: Zammad search query for polling (Elasticsearch syntax).
    poll_query: str = "state.name:new"

    def __post_init__(self) -> None:
        self._check(
            [
                *self._system_checks(),
                (not self.enabled or bool(self.token), "TOKEN: expected a Zammad access token"),
            ]
        )


@dataclass(frozen=True)
class OtoboSettings(SystemSettings):
    """The OTOBO / Znuny connector (GenericInterface REST web service);
    ``TRIAGE_OTOBO_<NAME>``. ``WEBHOOK_SECRET`` is the password the web service's invoker
    sends with HTTP basic authentication."""

    prefix: ClassVar[str] = PREFIX + "OTOBO_"

    mapping: Path = Path("data/connectors/otobo.yaml")
    #: Path of the web service below ``URL``.
    webservice: str = "/otobo/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST"
    #: The agent the connector logs in as.
    user: str = ""
    password: str = field(default="", repr=False)
    #: Queues polled for new tickets (comma-separated names; all queues when empty).
    poll_queues: str = ""
    #: State types of the tickets polled.
    poll_state_type: str = "new"

    def __post_init__(self) -> None:
        self._check(
            [
                *self._system_checks(),
                (not self.enabled or bool(self.user), "USER: expected an agent login"),
                (not self.enabled or bool(self.password), "PASSWORD: expected its password"),
            ]
        )


@dataclass(frozen=True)
class JiraSettings(SystemSettings):
    """The Jira Service Management connector (Jira Cloud REST API v3, Service Desk REST API,
    webhooks); ``TRIAGE_JIRA_<NAME>``. ``WEBHOOK_SECRET`` is the webhook's secret
    (HMAC-SHA256 in ``X-Hub-Signature``)."""

    prefix: ClassVar[str] = PREFIX + "JIRA_"

    mapping: Path = Path("data/connectors/jira.yaml")
    #: The Atlassian account the connector acts as, and its API token.
    email: str = ""
    api_token: str = field(default="", repr=False)
    #: JQL of the issues polled for new tickets.
    poll_jql: str = 'statusCategory = "To Do" ORDER BY created DESC'

    def __post_init__(self) -> None:
        self._check(
            [
                *self._system_checks(),
                (not self.enabled or bool(self.email), "EMAIL: expected the account's e-mail"),
                (not self.enabled or bool(self.api_token), "API_TOKEN: expected an API token"),
            ]
        )


@dataclass(frozen=True)
class WebhookSettings(EnvironmentSettings):
    """Generic webhooks; each field is ``TRIAGE_WEBHOOK_<NAME>``. Inbound: any system posts a
    ticket, signed with HMAC-SHA256; outbound: every result is posted, signed, to a URL."""

    prefix: ClassVar[str] = PREFIX + "WEBHOOK_"

    #: Accept tickets at ``POST /v1/connectors/webhook/events``.
    inbound_enabled: bool = False
    #: Secret of inbound signatures (``X-Triage-Signature: t=<unix time>,v1=<hex>``).
    inbound_secret: str = field(default="", repr=False)
    #: Seconds a signature's timestamp may differ from this server's clock.
    tolerance_s: float = 300.0
    #: URL every result is posted to; empty sends nothing.
    outbound_url: str = ""
    #: Secret the outbound posts are signed with.
    outbound_secret: str = field(default="", repr=False)
    #: Attempts per delivery before it goes to the dead letters (kept until replayed).
    max_attempts: int = 5
    #: Seconds before the first retry; doubled after each failed attempt.
    backoff_s: float = 2.0
    #: Seconds one delivery attempt may take.
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        self._check(
            [
                (
                    not self.inbound_enabled or len(self.inbound_secret) >= 16,
                    "INBOUND_SECRET: expected a secret of 16 characters or more",
                ),
                (self.tolerance_s > 0, "TOLERANCE_S: expected more than 0 seconds"),
                (
                    not self.outbound_url or self.outbound_url.startswith(("http://", "https://")),
                    "OUTBOUND_URL: expected http(s)://...",
                ),
                (
                    not self.outbound_url or len(self.outbound_secret) >= 16,
                    "OUTBOUND_SECRET: expected a secret of 16 characters or more",
                ),
                (1 <= self.max_attempts <= 100, "MAX_ATTEMPTS: expected 1..100"),
                (0 <= self.backoff_s <= 3600, "BACKOFF_S: expected 0..3600 seconds"),
                (0 < self.timeout_s <= 300, "TIMEOUT_S: expected 0..300 seconds"),
            ]
        )


@dataclass(frozen=True)
class ConnectorSettings(EnvironmentSettings):
    """Connectors to ticket systems and generic webhooks; each system reads its own
    prefix (see ``docs/connectors.md``)."""

    prefix: ClassVar[str] = PREFIX + "CONNECTORS_"

    zammad: ZammadSettings = field(default_factory=ZammadSettings)
    otobo: OtoboSettings = field(default_factory=OtoboSettings)
    jira: JiraSettings = field(default_factory=JiraSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    """How the service runs. Each field is set by ``TRIAGE_<FIELD NAME IN CAPITALS>``."""

    #: Model bundle folder, as written by ``make train``.
    model_dir: Path = Path("onnx_models/ticket-triage")
    #: ``fp32`` (default) or ``int8``. INT8 is faster, but its dynamic quantisation scales
    #: activations per batch, so a ticket's probabilities shift slightly with the tickets
    #: batched beside it; fp32 answers the same whatever the traffic.
    model_variant: str = "fp32"
    #: Execution provider: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    provider: str = "auto"
    #: ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose.
    threads: int = 0
    #: Most tickets run through the model in one batch. Small batches of similar length waste
    #: the least on padding: on a 2-core CPU, `make bench` measured 8 (fp32) and 16 (INT8)
    #: fastest, and the server at 32 concurrent clients answered 58 requests/s with 8 against
    #: 31.5 with 32. On a GPU, larger batches pay.
    max_batch_size: int = 8
    #: Longest a ticket waits for others to join its batch, in milliseconds.
    max_batch_wait_ms: float = 5.0
    #: Tickets waiting for the model before new ones are refused with 503.
    max_queue_size: int = 1024
    #: Longest accepted subject plus body, in characters.
    max_text_chars: int = 20_000
    #: Most tickets in one ``/v1/classify/batch`` call.
    max_batch_request: int = 64
    #: Largest accepted request body, in bytes (413 above).
    max_body_bytes: int = 2_000_000
    #: Longest a request may take, in seconds, before it is answered 504.
    request_timeout_s: float = 30.0
    #: Alternatives listed after the top label of each head.
    top_alternatives: int = 2
    #: Probability below which a head's prediction asks for review; per head.
    confidence_thresholds: Mapping[str, float] = field(
        default_factory=lambda: {"queue": 0.5, "priority": 0.5, "type": 0.5}
    )
    #: Threshold for heads not named in ``confidence_thresholds``.
    default_confidence_threshold: float = 0.5
    #: Folder for the embedded database and the vector index.
    data_dir: Path = Path("var")
    #: SQLAlchemy URL of the database, e.g. ``postgresql://triage@db:5432/triage``;
    #: a SQLite file in ``data_dir`` when empty.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    learning: LearningSettings = field(default_factory=LearningSettings)
    web: WebSettings = field(default_factory=WebSettings)
    connectors: ConnectorSettings = field(default_factory=ConnectorSettings)

    def __post_init__(self) -> None:
        self._check(
            [
                (self.model_variant in VARIANTS, f"MODEL_VARIANT: expected one of {VARIANTS}"),
                (self.provider in PROVIDERS, f"PROVIDER: expected one of {PROVIDERS}"),
                (self.threads >= 0, "THREADS: expected 0 or more"),
                (1 <= self.max_batch_size <= 512, "MAX_BATCH_SIZE: expected 1..512"),
                (0 <= self.max_batch_wait_ms <= 1000, "MAX_BATCH_WAIT_MS: expected 0..1000"),
                (self.max_queue_size >= 1, "MAX_QUEUE_SIZE: expected 1 or more"),
                (self.max_text_chars >= 1, "MAX_TEXT_CHARS: expected 1 or more"),
                (self.max_batch_request >= 1, "MAX_BATCH_REQUEST: expected 1 or more"),
                (self.max_body_bytes >= 1024, "MAX_BODY_BYTES: expected 1024 or more"),
                (0 < self.request_timeout_s <= 3600, "REQUEST_TIMEOUT_S: expected 0..3600"),
                (0 <= self.top_alternatives <= 20, "TOP_ALTERNATIVES: expected 0..20"),
                (
                    all(0 <= v <= 1 for v in self.confidence_thresholds.values()),
                    "CONFIDENCE_THRESHOLDS: expected probabilities between 0 and 1",
                ),
                (0 <= self.default_confidence_threshold <= 1, "DEFAULT_CONFIDENCE_THRESHOLD: 0..1"),
                (1 <= self.port <= 65535, "PORT: expected 1..65535"),
                (
                    self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
                    "LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR",
                ),
            ]
        )

    def threshold(self, head: str) -> float:
        return float(self.confidence_thresholds.get(head, self.default_confidence_threshold))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'triage.db'}"

    @property
    def knowledge_index_dir(self) -> Path:
        return self.knowledge.index_dir or self.data_dir / "knowledge-index"


def _default_of(item: dataclasses.Field[Any]) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    assert item.default_factory is not dataclasses.MISSING
    return item.default_factory()


def _parse(variable: str, raw: str, default: Any, annotation: str) -> Any:
    """``raw`` as the type of ``default``; ``annotation`` (the field's type, as written)
    tells a path whose default is None."""
    try:
        if isinstance(default, bool):
            # Strict: a misspelt "ture" must not switch authentication off.
            word = raw.strip().lower()
            if word not in _TRUE + _FALSE:
                raise ValueError(word)
            return word in _TRUE
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path) or "Path" in annotation:
            return Path(raw).expanduser() if raw.strip() else default
        if isinstance(default, Mapping):
            pairs = (part.split("=", 1) for part in raw.split(",") if part.strip())
            return {key.strip(): float(value) for key, value in pairs}
    except ValueError as exc:
        expected = "true or false (or 1/0, yes/no, on/off)" if isinstance(default, bool) else (
            f"a value like {default!r}"
        )
        raise SettingsError(f"{variable}: expected {expected}, found {raw!r}") from exc
    return raw.strip()
