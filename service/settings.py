"""Service settings: one typed object, read once from ``TRIAGE_``-prefixed variables.

Every field is validated when the object is built, so a bad value stops the
server at start-up with a message naming the variable, instead of failing on
the first request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PREFIX", "Settings", "SettingsError"]

PREFIX = "TRIAGE_"
PROVIDERS = ("auto", "cpu", "cuda")
VARIANTS = ("fp32", "int8")


class SettingsError(ValueError):
    """A setting is missing or out of range; the message names the variable."""


@dataclass(frozen=True)
class Settings:
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
    #: Most tickets run through the model in one batch.
    max_batch_size: int = 32
    #: Longest a ticket waits for others to join its batch, in milliseconds.
    max_batch_wait_ms: float = 5.0
    #: Tickets waiting for the model before new ones are refused with 503.
    max_queue_size: int = 1024
    #: Longest accepted subject plus body, in characters.
    max_text_chars: int = 20_000
    #: Most tickets in one ``/v1/classify/batch`` call.
    max_batch_request: int = 64
    #: Largest accepted request body, in bytes.
    max_body_bytes: int = 2_000_000
    #: Alternatives listed after the top label of each head.
    top_alternatives: int = 2
    #: Probability below which a head's prediction asks for review; per head.
    confidence_thresholds: Mapping[str, float] = field(
        default_factory=lambda: {"queue": 0.5, "priority": 0.5, "type": 0.5}
    )
    #: Threshold for heads not named in ``confidence_thresholds``.
    default_confidence_threshold: float = 0.5
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.model_variant in VARIANTS, f"MODEL_VARIANT: expected one of {VARIANTS}"),
            (self.provider in PROVIDERS, f"PROVIDER: expected one of {PROVIDERS}"),
            (self.threads >= 0, "THREADS: expected 0 or more"),
            (1 <= self.max_batch_size <= 512, "MAX_BATCH_SIZE: expected 1..512"),
            (0 <= self.max_batch_wait_ms <= 1000, "MAX_BATCH_WAIT_MS: expected 0..1000"),
            (self.max_queue_size >= 1, "MAX_QUEUE_SIZE: expected 1 or more"),
            (self.max_text_chars >= 1, "MAX_TEXT_CHARS: expected 1 or more"),
            (self.max_batch_request >= 1, "MAX_BATCH_REQUEST: expected 1 or more"),
            (self.max_body_bytes >= 1024, "MAX_BODY_BYTES: expected 1024 or more"),
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
        for ok, message in checks:
            if not ok:
                name, _, expected = message.partition(": ")
                found = getattr(self, name.lower())
                raise SettingsError(f"{PREFIX}{name}: {expected}, found {found!r}")

    def threshold(self, head: str) -> float:
        return float(self.confidence_thresholds.get(head, self.default_confidence_threshold))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from ``TRIAGE_*`` variables (``os.environ`` by default), then ``overrides``.

        ``TRIAGE_CONFIDENCE_THRESHOLDS`` takes ``head=probability`` pairs separated by
        commas, e.g. ``queue=0.6,priority=0.5``.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            raw = environ.get(PREFIX + item.name.upper())
            if raw is None:
                continue
            values[item.name] = _parse(item.name, raw, cls._default_of(item))
        values.update(overrides)
        return cls(**values)

    @staticmethod
    def _default_of(item: dataclasses.Field[Any]) -> Any:
        if item.default is not dataclasses.MISSING:
            return item.default
        assert item.default_factory is not dataclasses.MISSING
        return item.default_factory()


def _parse(name: str, raw: str, default: Any) -> Any:
    variable = PREFIX + name.upper()
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
        if isinstance(default, Mapping):
            pairs = (part.split("=", 1) for part in raw.split(",") if part.strip())
            return {key.strip(): float(value) for key, value in pairs}
    except ValueError as exc:
        raise SettingsError(
            f"{variable}: expected a value like {default!r}, found {raw!r}"
        ) from exc
    return raw.strip()
