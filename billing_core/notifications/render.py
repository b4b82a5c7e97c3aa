"""Rendering: Jinja2 templates per kind and language, money and dates formatted by Babel.

Templates live in ``templates/<language>/``, three files per kind of email and one per kind of
text message::

    templates/_layout.html                 the HTML frame: <html lang=… dir=…>, shared styles
    templates/<lang>/_footer.txt|.html     the footer in that language
    templates/<lang>/<kind>.subject.txt    one line
    templates/<lang>/<kind>.txt            the plain-text part
    templates/<lang>/<kind>.html           the HTML part (extends _layout.html)
    templates/<lang>/<kind>.sms.txt        a text message, for kinds sent by SMS

A language is available when its directory exists; a customer whose language has no directory
(or whose directory lacks the kind) gets the English message, formatted for English. HTML is
autoescaped, text is not. A template that uses a value it was not given fails loudly
(``StrictUndefined``) instead of printing nothing.

Amounts are formatted with the currency's own exponent from :mod:`billing_core.money` (JPY 0,
KWD 3, IQD 3 even where CLDR says otherwise) in the customer's locale (language and country,
``de_CH``, when Babel knows that pair; else the language alone). Dates are the customer's local
dates, in the locale's long format. Right-to-left languages (Arabic) get ``dir="rtl"``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import NumberPattern
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from billing_core.money import Money, currency
from billing_core.notifications.errors import RenderError

TEMPLATES = Path(__file__).parent / "templates"
_SPACES = re.compile(r"[ \t\r\n]+")
_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str


@lru_cache(maxsize=256)
def babel_locale(language: str, country: str | None = None) -> Locale:
    """The Babel locale for a language and a country (``es`` + ``MX``), or the language alone."""
    if country:
        try:
            return Locale.parse(f"{language}_{country}")
        except (UnknownLocaleError, ValueError):
            pass
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LANGUAGE)


@lru_cache(maxsize=256)
def _currency_pattern(locale: Locale, exponent: int) -> NumberPattern:
    pattern: NumberPattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (exponent, exponent)
    return pattern


def format_money(amount_minor: int, currency_code: str, locale: Locale) -> str:
    """``12345`` fils of KWD as ``KWD 12.345`` in ``en``, ``12,345 KWD`` in ``de``: the currency's own
    decimals; the locale's symbols, grouping and symbol position."""
    cur = currency(currency_code)
    value = Money(amount_minor, cur).to_major()
    pattern = _currency_pattern(locale, cur.exponent)
    text = str(pattern.apply(value, locale, currency=cur.code, currency_digits=False))
    # CLDR's currency spacing, which Babel leaves out: a code or name that touches the digits
    # gets a no-break space (KWD\u00a012.345, not KWD12.345); symbols such as $ and € do not.
    return _LETTER_DIGIT.sub("\u00a0", text)


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_date(instant: datetime, timezone: str) -> date:
    """The date ``instant`` falls on in ``timezone`` (an unknown zone counts as UTC)."""
    return instant.astimezone(_zone(timezone)).date()


class Formatter:
    """Money and dates for one customer: their locale and their time zone."""

    def __init__(self, language: str, country: str | None, timezone: str) -> None:
        self.locale = babel_locale(language, country)
        self.timezone = timezone

    @property
    def direction(self) -> str:
        return "rtl" if self.locale.character_order == "right-to-left" else "ltr"

    def money(self, amount_minor: int, currency_code: str) -> str:
        return format_money(amount_minor, currency_code, self.locale)

    def date(self, instant: datetime) -> str:
        return str(format_date(local_date(instant, self.timezone), format="long", locale=self.locale))


class Renderer:
    """Renders the templates of a directory (the package's own by default)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.env = Environment(
            loader=FileSystemLoader(templates),
            autoescape=select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.names = frozenset(self.env.list_templates())
        self.languages = frozenset(name.split("/", 1)[0] for name in self.names if "/" in name)

    def language_for(self, kind: str, language: str, *, sms: bool = False) -> str:
        """The language the message will be written in: the customer's, if it has the templates."""
        suffix = "sms.txt" if sms else "subject.txt"
        return language if f"{language}/{kind}.{suffix}" in self.names else DEFAULT_LANGUAGE

    def email(self, kind: str, language: str, values: dict[str, Any]) -> RenderedEmail:
        """Subject, text and HTML of an email of ``kind`` in ``language`` (already resolved)."""
        context = {"lang": language, **values}
        subject = _one_line(self._render(f"{language}/{kind}.subject.txt", context))
        text = self._render(f"{language}/{kind}.txt", context).strip() + "\n"
        html = self._render(f"{language}/{kind}.html", {**context, "subject": subject})
        return RenderedEmail(subject, text, html, language)

    def sms(self, kind: str, language: str, values: dict[str, Any]) -> str:
        return _one_line(self._render(f"{language}/{kind}.sms.txt", {"lang": language, **values}))

    def _render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(context)
        except TemplateError as exc:
            raise RenderError(name, f"{type(exc).__name__}: {exc}") from exc


def _one_line(text: str) -> str:
    """Line breaks and runs of spaces become one space; no-break spaces (``12,50\u00a0€``) stay."""
    return _SPACES.sub(" ", text).strip(" ")


@cache
def default_renderer() -> Renderer:
    return Renderer()
