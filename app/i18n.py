"""Server text in English and Chinese from one gettext catalogue.

English is the source language: every msgid is the English text, and
app/translations/zh_Hans/LC_MESSAGES/messages.po holds the Chinese
(`make translations` extracts, updates and compiles it; the compiled .mo is
shipped in git, so a fresh clone, CI and the Docker image need no build step).

Three ways to mark a text:

- ``_("…", name=value)``: translated now, in the request's language.
- ``_l("…", name=value)``: lazy, translated when it is rendered. Error classes
  and anything built before the language is known use it.
- ``N_("…")``: only marked for extraction (a template that gets its values
  later through ``_(template, …)``).

Values go through gettext placeholders (``%(name)s``), never f-strings, so
a translation can move them.

The request's language: `Accept-Language` first, then the page's `lang`
cookie, else English. Code that runs without a request (background workers,
the providers) knows the caller's language instead and calls
``translate(message, language)``, which needs no request or app context: it
reads the compiled catalogue itself, once per language.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from flask import Flask, has_request_context, request
from flask_babel import LazyString, get_locale
from flask_babel import gettext as _
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header, parse_cookie

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"

# The app's two languages (the page's `lang` cookie and i18n.js use these
# short names) and the catalogue locale of each.
LOCALES = {"en": "en", "zh": "zh_Hans"}
DEFAULT_LANGUAGE = "en"
# Every JSON answer, the hand-built ones included.
JSON_MIMETYPE = "application/json; charset=utf-8"
# Order matters on a tie: "*" or an equal quality picks English.
_MATCHES = ["en", "zh", "zh-CN", "zh-TW"]


class LazyMessage(LazyString):
    """flask_babel's lazy string that also keeps its msgid and values, so it
    can be rendered in a language named by the caller (``in_language``) as
    well as in the request's (``str()``)."""

    def __init__(self, msgid: str, **variables: Any) -> None:
        super().__init__(_, msgid, **variables)
        self.msgid = msgid
        self.variables = variables

    def in_language(self, language: str | None) -> str:
        text = _catalogue(_locale(language)).gettext(self.msgid)
        if not self.variables:
            return text
        # A value may itself be a message: it speaks the same language.
        return text % {name: _render(value, language) for name, value in self.variables.items()}


def _l(msgid: str, **variables: Any) -> LazyMessage:
    return LazyMessage(msgid, **variables)


def N_(msgid: str) -> str:
    return msgid


class LazyList:
    """Items (messages or plain words) joined as a list in the language the
    whole is rendered in: "grayscale, blur" / "黑白、模糊". A value of a
    message like any other: ``_l("Applied: %(steps)s", steps=LazyList(steps))``."""

    separator = _l(", ")

    def __init__(self, items: Any) -> None:
        self.items = list(items)

    def in_language(self, language: str | None) -> str:
        return translate(self.separator, language).join(
            translate(item, language) for item in self.items
        )

    def __str__(self) -> str:
        return self.in_language(current_language())


def translate(message: Any, language: str | None) -> str:
    """`message` in `language` ("en", "zh", or a tag such as "zh-CN" or
    "zh_Hans"; None means English). A plain string is returned as it is: it
    is text that was never in the catalogue (a name, the model's words)."""
    if isinstance(message, LazyMessage | LazyList):
        return message.in_language(language)
    return str(message)


def translate_or_both(message: Any, language: str | None) -> str:
    """Like translate, but both languages when the caller named none (a script
    that never sent Accept-Language still reads either half)."""
    if language:
        return translate(message, language)
    english, chinese = translate(message, "en"), translate(message, "zh")
    return english if english == chinese else f"{english} / {chinese}"


def _render(value: Any, language: str | None) -> Any:
    return value.in_language(language) if isinstance(value, LazyMessage | LazyList) else value


def _locale(language: str | None) -> str:
    if language and language.lower().replace("-", "_").startswith("zh"):
        return LOCALES["zh"]
    return LOCALES["en"]


@functools.cache
def _catalogue(locale: str) -> Translations | NullTranslations:
    if locale == LOCALES[DEFAULT_LANGUAGE]:
        return NullTranslations()  # the msgids are the English text
    return Translations.load(str(TRANSLATIONS_DIR), [locale], DOMAIN)


# --- which language the caller asked for ------------------------------------


def language_from_headers(accept_language: str | None, lang_cookie: str | None) -> str | None:
    """The caller's language, "zh" or "en", or None when it named none.

    `Accept-Language` first (the page sends its own choice there), then the
    page's `lang` cookie; a header naming only languages we don't speak means
    English unless the cookie says otherwise."""
    if accept_language:
        best = parse_accept_header(accept_language, LanguageAccept).best_match(_MATCHES)
        if best:
            return "zh" if best.startswith("zh") else "en"
    if lang_cookie in LOCALES:
        return lang_cookie
    return DEFAULT_LANGUAGE if accept_language else None


def language_from_cookie_header(accept_language: str | None, cookie_header: str | None) -> str:
    """For answers written outside Flask (waitress's own errors)."""
    cookie = parse_cookie(cookie_header or "").get("lang")
    return language_from_headers(accept_language, cookie) or DEFAULT_LANGUAGE


def named_language() -> str | None:
    """The request's language, or None when it named none: no
    Accept-Language and no `lang` cookie (a bare script)."""
    return language_from_headers(
        request.headers.get("Accept-Language"), request.cookies.get("lang")
    )


def preferred_language() -> str:
    return named_language() or DEFAULT_LANGUAGE


def select_locale() -> str | None:
    """Flask-Babel's locale selector. Without a request (a CLI command, a
    worker with an app context) the default locale, English."""
    if not has_request_context():
        return None
    return LOCALES[preferred_language()]


def current_language() -> str:
    """The language `str(lazy message)` renders in right now."""
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else DEFAULT_LANGUAGE


def init_i18n(app: Flask) -> None:
    from app.extensions import babel

    babel.init_app(
        app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS_DIR)
    )
    # JSON answers carry Chinese as UTF-8, not \u escapes, and say so.
    app.json.ensure_ascii = False
    app.json.mimetype = JSON_MIMETYPE
