"""Ticket text as the model sees it, and language detection.

Training and serving both build model inputs here, so a ticket is encoded the
same way when the model learns from it and when it is later classified.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

__all__ = ["QUERY_PREFIX", "clean_text", "detect_language", "ticket_text"]

# e5 models were trained with this prefix on inputs that are searched for or classified.
QUERY_PREFIX = "query: "

_ESCAPED_NEWLINE = re.compile(r"\\r\\n|\\n|\\r")
# Only real HTML tag names: ticket texts also hold placeholders such as <name> or <acc_num>.
_HTML_TAGS = (
    "a|b|blockquote|body|br|center|div|em|font|h[1-6]|head|hr|html|i|img|li|meta|ol|p|pre|"
    "section|small|span|strong|style|sub|sup|table|tbody|td|th|thead|tr|u|ul"
)
_BREAKING_TAG = re.compile(r"<\s*(?:br|/?p|/?div|/?li|/?tr|/?h[1-6])\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(rf"<\s*/?\s*(?:{_HTML_TAGS})\b[^>]*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\u00a0]+")
_LINE_EDGES = re.compile(r" *\n *")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def clean_text(text: str) -> str:
    """Plain text from an export: HTML tags and entities resolved, escaped newlines made
    real, runs of blanks collapsed."""
    if "<" in text or "&" in text:
        text = _HTML_TAG.sub("", _BREAKING_TAG.sub("\n", text))
        text = html.unescape(text)
    text = _ESCAPED_NEWLINE.sub("\n", text.replace("\r\n", "\n"))
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n", text).strip()


def ticket_text(subject: str | None, body: str | None, prefix: str = QUERY_PREFIX) -> str:
    """The single string the encoder reads: prefix, subject line, then body."""
    parts = [clean_text(part) for part in (subject, body) if part]
    return prefix + "\n".join(part for part in parts if part)


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code of the text's language and the detector's probability.

    Short or empty texts give ``("und", 0.0)``: there is nothing to judge.
    """
    sample = clean_text(text)[:2000]
    if sum(ch.isalpha() for ch in sample) < 3:
        return "und", 0.0
    language, probability = _identifier().classify(sample)
    return str(language), float(probability)
