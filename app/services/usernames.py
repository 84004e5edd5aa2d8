"""What a username may be, and when two usernames are the same one.

A name is NFKC-normalised and must be 3–32 letters, digits, `_ . -`
(`_ALLOWED`). On top of that, three rules from Unicode's security standards,
each through a kept library rather than a list of our own:

- nothing invisible: the name must pass PRECIS's username profile (RFC 8265,
  `precis_i18n`), which refuses default-ignorable code points such as the
  Hangul fillers that `\\w` lets through ("alice" + U+3164 looks like "alice");
- one script: UTS #39's "highly restrictive" level over the scripts of
  Unicode's Scripts.txt (from `confusable_homoglyphs`): one script, or Latin
  with Han and the Japanese, Chinese or Korean scripts written beside it, so
  "ばなな太郎" and "张三abc" pass and a Cyrillic "а" inside "alice" does not;
- no look-alike of an existing name: UTS #39's skeleton, computed from
  Unicode's confusables.txt (as `confusable_homoglyphs` ships it), is stored
  per user under a unique index (`confusable_key`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from app.errors import InvalidInput
from app.i18n import _l

USERNAME_MIN, USERNAME_MAX = 3, 32
# Letters of any script (CJK included), digits, and _ . -
_ALLOWED = re.compile(r"^[\w.\-]+$", re.UNICODE)
# Characters every script shares (digits, _ . -) or inherits (combining marks).
_SHARED_SCRIPTS = frozenset({"COMMON", "INHERITED"})
# UTS #39 "highly restrictive": single script, or one of these combinations.
_CJK_WITH_LATIN = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def normalise(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip()


def key(username: str) -> str:
    """Case-insensitive identity: the login lookup and the exact-duplicate check."""
    return normalise(username).casefold()


def validate(username: str) -> str:
    """The normalised name, or InvalidInput saying which rule it breaks."""
    username = normalise(username)
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX or not _ALLOWED.match(username):
        raise InvalidInput(
            _l("Username must be 3–32 characters: letters, digits, _ . -"),
            code="invalid_username",
        )
    if not _precis_allows(username):
        raise InvalidInput(
            _l("Username contains invisible or unusual characters."),
            code="invalid_username",
        )
    if not is_single_script(username):
        raise InvalidInput(
            _l("Username mixes writing systems (for example Latin and Cyrillic letters)."),
            code="invalid_username",
        )
    return username


def _precis_allows(username: str) -> bool:
    try:
        _username_profile().enforce(username)
    except UnicodeEncodeError:
        return False
    return True


@lru_cache(maxsize=1)
def _username_profile():
    from precis_i18n import get_profile

    return get_profile("UsernameCasePreserved")


def scripts_of(text: str) -> set[str]:
    from confusable_homoglyphs.categories import unique_aliases

    return unique_aliases(text) - _SHARED_SCRIPTS


def is_single_script(text: str) -> bool:
    scripts = scripts_of(text)
    return len(scripts) <= 1 or any(scripts <= allowed for allowed in _CJK_WITH_LATIN)


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character to its confusables.txt
    prototype, NFD again. Two strings that look alike share it."""
    prototype = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(prototype.get(c, c) for c in decomposed))


def confusable_key(username: str) -> str:
    """Identity for look-alikes: the skeleton, case folded, of the name as
    written. Folding after the skeleton keeps "aIice" (capital i) beside
    "alice"; the second skeleton settles what folding brought in."""
    return skeleton(skeleton(normalise(username)).casefold())


# The file's comments wrap right-to-left characters in these marks for
# display; they are not part of any mapping.
_DISPLAY_MARKS = dict.fromkeys(map(ord, "\u200e\u200f"))


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """confusables.txt as a character → prototype map.

    `confusable_homoglyphs` keeps each (source, prototype) line of the file
    in both directions. A multi-character side is always the prototype. The
    single-character lines of one prototype form a star: the prototype is
    joined to each of its sources, and is the class member with most links
    (a class of two, where either could be, is named by its lower code point;
    both members then share one skeleton all the same).
    """
    from confusable_homoglyphs.confusables import confusables_data

    links: dict[str, set[str]] = {}
    expansions: dict[str, str] = {}
    for source, entries in confusables_data.items():
        source = source.translate(_DISPLAY_MARKS)
        for entry in entries:
            target = entry["c"].translate(_DISPLAY_MARKS)
            if len(source) == 1 and len(target) == 1:
                links.setdefault(source, set()).add(target)
                links.setdefault(target, set()).add(source)
            elif len(source) == 1:
                expansions[source] = target
    mapping: dict[str, str] = {}
    seen: set[str] = set()
    for start in links:
        if start in seen:
            continue
        members, pending = {start}, [start]
        while pending:
            for other in links[pending.pop()] - members:
                members.add(other)
                pending.append(other)
        seen |= members
        prototype = min(members, key=lambda c: (-len(links[c]), c))
        mapping.update((c, prototype) for c in members if c != prototype)
    for source, target in expansions.items():
        mapping[source] = "".join(mapping.get(c, c) for c in target)
    return mapping
