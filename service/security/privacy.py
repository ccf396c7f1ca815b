"""Personal data in ticket text: e-mail addresses, phone numbers, IBANs and card numbers.

``Redactor`` replaces each by a placeholder. Candidates are found by patterns and
then confirmed by the checks that define them, so that order numbers, versions
and dates stay: an IBAN must pass its ISO 7064 check digits (python-stdnum),
a card number the Luhn check, a phone number must be a valid number of a known
country (phonenumbers, Google's libphonenumber), and not be a date or a bare run of
digits that does not start with ``+``, ``00`` or ``0`` (an order number, most
often; a phone number written that way stays). ``RedactingFilter`` applies it
to every log record, message and traceback alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import phonenumbers
from stdnum import iban, luhn

from service.settings import PrivacySettings

__all__ = ["PLACEHOLDERS", "RedactingFilter", "Redactor", "knowledge_redactor", "logging_config"]

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "iban": "<IBAN>", "card": "<CARD>"}
DEFAULT_PHONE_REGIONS = ("DE", "AT", "CH", "US", "GB", "FR", "ES", "PT", "IT", "NL")

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}", re.UNICODE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w+])\d(?:[ -]?\d){12,18}(?!\w)")
# A run of digits with the separators people write in phone numbers, 7 digits at least.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d(?:[\d ()./-]{5,22})\d(?!\w)")
# Dates (and date-stamped versions such as 2026.12.04-083553) and IPv4 addresses are
# digits with separators too.
_NOT_PHONE = re.compile(
    r"^\d{4}[./-]\d{1,2}[./-]\d{1,2}(?!\d)|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$"
    r"|^\d{1,3}(?:\.\d{1,3}){3}$"
)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


class Redactor:
    def __init__(self, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> None:
        self.phone_regions = tuple(phone_regions)

    def redact(self, text: str) -> str:
        """``text`` with every confirmed e-mail address, IBAN, card and phone number replaced."""
        if not text:
            return text
        text = _IBAN.sub(self._iban, text)
        text = _CARD.sub(self._card, text)
        text = _EMAIL.sub(PLACEHOLDERS["email"], text)
        return _PHONE.sub(self._phone, text)

    def found(self, text: str) -> bool:
        return self.redact(text) != text

    @staticmethod
    def _iban(match: re.Match[str]) -> str:
        return PLACEHOLDERS["iban"] if iban.is_valid(match.group(0)) else match.group(0)

    @staticmethod
    def _card(match: re.Match[str]) -> str:
        digits = _digits(match.group(0))
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            return PLACEHOLDERS["card"]
        return match.group(0)

    def _phone(self, match: re.Match[str]) -> str:
        candidate = match.group(0).strip()
        if not 7 <= len(_digits(candidate)) <= 15 or _NOT_PHONE.match(candidate):
            return match.group(0)
        # A bare run of digits is an order or invoice number more often than a phone
        # number, unless it starts like one dialled: +, 00 or a trunk prefix 0.
        if candidate.isdigit() and not candidate.startswith("0"):
            return match.group(0)
        international = candidate.startswith(("+", "00"))
        if international:
            candidate = "+" + candidate.removeprefix("00")
        for region in (None,) if international else self.phone_regions:
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return PLACEHOLDERS["phone"]
        return match.group(0)


def knowledge_redactor(privacy: PrivacySettings) -> Redactor | None:
    """The redactor for texts going into the knowledge base, when that is switched on."""
    return Redactor(privacy.regions) if privacy.redact_knowledge else None


class RedactingFilter(logging.Filter):
    """Redacts personal data from a record's message and traceback before any handler
    formats it. Attach it to handlers (a filter on a logger misses propagated records)."""

    def __init__(self, name: str = "", phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS):
        super().__init__(name)
        self.redactor = Redactor(phone_regions)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return True


def logging_config(level: str, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> dict:
    """A ``logging.config.dictConfig`` for the service and uvicorn: one stderr handler,
    redacting, for every logger."""
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "plain",
        "filters": ["redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact": {"()": RedactingFilter, "phone_regions": tuple(phone_regions)},
        },
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            name: {"level": level.upper(), "handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
