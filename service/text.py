"""Ticket text as the model sees it, and language detection.

Training and serving both build model inputs here, so a ticket is encoded the
same way when the model learns from it and when it is later classified.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["QUERY_PREFIX", "detect_language", "normalise_whitespace", "ticket_text"]

# e5 models were trained with this prefix on inputs that are searched for or classified.
QUERY_PREFIX = "query: "

_ESCAPED_NEWLINE = re.compile(r"\\r\\n|\\n|\\r")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def normalise_whitespace(text: str) -> str:
    """Turn escaped newlines into real ones and collapse runs of blanks."""
    text = _ESCAPED_NEWLINE.sub("\n", text.replace("\r\n", "\n"))
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n", text).strip()


def ticket_text(subject: str | None, body: str | None, prefix: str = QUERY_PREFIX) -> str:
    """The single string the encoder reads: prefix, subject line, then body."""
    parts = [normalise_whitespace(part) for part in (subject, body) if part]
    return prefix + "\n".join(part for part in parts if part)


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code of the text's language and the detector's probability.

    Short or empty texts give ``("und", 0.0)``: there is nothing to judge.
    """
    sample = normalise_whitespace(text)[:2000]
    if sum(ch.isalpha() for ch in sample) < 3:
        return "und", 0.0
    language, probability = _identifier().classify(sample)
    return str(language), float(probability)
