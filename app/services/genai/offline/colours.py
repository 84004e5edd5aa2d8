"""The colour vocabulary of the offline engine: the words a prompt may use,
in English and Chinese. What a reply calls a colour is a catalogue message
(its ``label``), so it speaks the caller's language.

Generation paints with the colours a prompt names (found with
``COLOUR_PATTERN``); an edit tints with them or gives them to a border
(edit_words builds its own, faster pattern from the same words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.i18n import LazyMessage, _l

RGB = tuple[int, int, int]


# One object per colour (COLOURS), so identity is equality.
@dataclass(frozen=True, eq=False)
class NamedColour:
    label: LazyMessage
    rgb: RGB

    @property
    def en(self) -> str:
        """The English word, the colour's key."""
        return self.label.msgid


COLOURS: dict[str, NamedColour] = {
    colour.en: colour
    for colour in (
        NamedColour(_l("red"), (220, 50, 47)),
        NamedColour(_l("orange"), (245, 140, 40)),
        NamedColour(_l("yellow"), (250, 212, 60)),
        NamedColour(_l("green"), (70, 170, 90)),
        NamedColour(_l("cyan"), (40, 190, 200)),
        NamedColour(_l("blue"), (50, 110, 220)),
        NamedColour(_l("purple"), (140, 70, 190)),
        NamedColour(_l("pink"), (240, 130, 170)),
        NamedColour(_l("white"), (250, 250, 250)),
        NamedColour(_l("black"), (20, 20, 24)),
        NamedColour(_l("gray"), (128, 128, 128)),
        NamedColour(_l("brown"), (140, 90, 50)),
        NamedColour(_l("gold"), (212, 175, 55)),
    )
}
_SYNONYMS = {
    "grey": "gray",
    "golden": "gold",
    "violet": "purple",
    "teal": "cyan",
    "banana": "yellow",
    "粉红": "pink",
    "金黄": "gold",
    "天蓝": "blue",
    "香蕉": "yellow",
    "红": "red",
    "橙": "orange",
    "黄": "yellow",
    "绿": "green",
    "青": "cyan",
    "蓝": "blue",
    "紫": "purple",
    "粉": "pink",
    "白": "white",
    "黑": "black",
    "灰": "gray",
    "棕": "brown",
    "褐": "brown",
    "金": "gold",
}
# "Banana" colours a generated picture but is an object, not a tint, in an edit.
OBJECT_WORDS = frozenset({"banana", "香蕉"})
# Longest first, so that "粉红" is not read as "粉" and then "红".
EN_COLOUR_WORDS = tuple(
    sorted([*COLOURS, *(word for word in _SYNONYMS if word.isascii())], key=len, reverse=True)
)
ZH_COLOUR_WORDS = tuple(
    sorted((word for word in _SYNONYMS if not word.isascii()), key=len, reverse=True)
)
COLOUR_PATTERN = re.compile(
    rf"(?<![A-Za-z])(?:{'|'.join(EN_COLOUR_WORDS)})(?![A-Za-z])|(?:{'|'.join(ZH_COLOUR_WORDS)})色?",
    re.IGNORECASE,
)

# Every way COLOUR_PATTERN can match a colour, lower-cased: its colour.
SPELLINGS: dict[str, NamedColour] = {
    spelling: COLOURS[_SYNONYMS.get(word, word)]
    for word in (*EN_COLOUR_WORDS, *ZH_COLOUR_WORDS)
    for spelling in ((word,) if word.isascii() else (word, word + "色"))
}

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)


def colour_named(word: str) -> NamedColour:
    """The colour a ``COLOUR_PATTERN`` match names."""
    word = word.lower().removesuffix("色")
    return COLOURS[_SYNONYMS.get(word, word)]


def mix(a: RGB, b: RGB, amount: float) -> RGB:
    """``a`` moved ``amount`` (0..1) of the way towards ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * amount),
        round(a[1] + (b[1] - a[1]) * amount),
        round(a[2] + (b[2] - a[2]) * amount),
    )
