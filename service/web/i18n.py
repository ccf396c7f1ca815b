"""Interface strings in several languages: one YAML catalog per language in ``locales/``.

Every catalog has the keys of the English one (a test checks it). A page's language is the
one asked for with ``?lang=``, then the one remembered in a cookie, then the best of the
browser's ``Accept-Language`` that a catalog exists for, then the configured default.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

__all__ = ["LANGUAGE_COOKIE", "Catalogs", "choose_language"]

LOCALES = Path(__file__).with_name("locales")
LANGUAGE_COOKIE = "triage_lang"


class Catalogs:
    """The interface strings, by language and key."""

    def __init__(self, folder: Path = LOCALES) -> None:
        self.strings: dict[str, dict[str, str]] = {}
        for path in sorted(folder.glob("*.yaml")):
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            self.strings[path.stem] = {str(k): str(v) for k, v in loaded.items()}

    @property
    def languages(self) -> list[str]:
        return sorted(self.strings)

    def translate(self, language: str, key: str, **values: Any) -> str:
        """The string for ``key`` in ``language`` (English when missing), with ``{name}``
        placeholders filled from ``values``."""
        text = self.strings.get(language, {}).get(key) or self.strings["en"].get(key, key)
        return text.format(**values) if values else text


@functools.cache
def catalogs() -> Catalogs:
    return Catalogs()


def choose_language(
    asked: str | None, remembered: str | None, accept_language: str, default: str
) -> str:
    available = catalogs().strings
    for candidate in (asked, remembered):
        if candidate and candidate in available:
            return candidate
    weighted = []
    for part in accept_language.split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        weighted.append((weight, tag.split("-")[0].lower()))
    for _, language in sorted(weighted, key=lambda pair: -pair[0]):
        if language in available:
            return language
    return default if default in available else "en"
