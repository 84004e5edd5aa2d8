"""The words of an edit prompt: what each operation is called in English and
Chinese, and how a prompt is read before they are looked for.

Written for speed on long prompts as much as for meaning:

- ``normalise`` lower-cases the prompt without changing its length and folds
  every run of whitespace into at most two characters, so the patterns need
  no IGNORECASE, and no ``\\s*`` in them can backtrack over a long run;
- every alternative of a rule's pattern starts with a literal character, so the
  regex engine skips the characters that cannot start a match in C instead
  of trying a match at each of them;
- an English word must not follow a letter ("请blur一下" is a blur, "ablur"
  is not): ``Words.finditer`` checks that on each match, since a lookbehind
  at the front would again cost a try at every character.

Numbers are read back from the matched words (``first_number``), not from
named groups, because a group name cannot repeat across alternatives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from string import ascii_lowercase

from app.services.genai.offline.colours import EN_COLOUR_WORDS, OBJECT_WORDS, ZH_COLOUR_WORDS

# IGNORECASE on a pattern of ASCII letters also matches these four.
_LOWER = str.maketrans(
    {
        **{chr(code): chr(code + 32) for code in range(ord("A"), ord("Z") + 1)},
        "\u0130": "i",  # İ
        "\u0131": "i",  # ı
        "\u212a": "k",  # Kelvin sign
        "\u017f": "s",  # long s
    }
)
_WHITESPACE_RUN = re.compile(r"\s+")
_LETTERS = frozenset(ascii_lowercase)
_WORD_END = "(?![a-z])"
_LETTER_PAIR = re.compile("[a-z]{2}")


def normalise(prompt: str) -> tuple[str, list[int]]:
    """The prompt lower-cased, each whitespace run as at most two characters;
    and where each character of the result was in the prompt.

    Two, not one: a pattern that ends in optional words and then "not a
    letter" keeps all of a run but its last character when a letter follows,
    and a newline there (a clause break) is then part of the operation's
    words. So a run becomes its all-but-last part and its last character,
    each a newline if it held one, else a space."""
    prompt = prompt.translate(_LOWER)
    pieces: list[str] = []
    origin: list[int] = []
    done = 0
    for run in _WHITESPACE_RUN.finditer(prompt):
        start, end = run.span()
        pieces.append(prompt[done:start])
        origin += range(done, start)
        if end - start > 1:
            pieces.append("\n" if "\n" in prompt[start : end - 1] else " ")
            origin.append(start)
        pieces.append("\n" if prompt[end - 1] == "\n" else " ")
        origin.append(end - 1)
        done = end
    pieces.append(prompt[done:])
    origin += range(done, len(prompt))
    return "".join(pieces), origin


class Words:
    """A compiled pattern over normalised text whose matches that start with
    a letter must not follow one."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        # english() marks every English alternative; without one, no match
        # starts with a letter.
        self._has_english = _WORD_END in pattern

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """Like ``re.finditer``, as if every English word had a lookbehind."""
        if not self._has_english or not _has_letter_pair(text):
            # No letter follows a letter: the regex engine's own iterator will do.
            return self.pattern.finditer(text)
        return self._outside_words(text)

    def _outside_words(self, text: str) -> Iterator[re.Match[str]]:
        position = 0
        while position <= len(text):
            for match in self.pattern.finditer(text, position):
                start = match.start()
                if start and text[start - 1] in _LETTERS and text[start] in _LETTERS:
                    position = start + 1  # inside a word: look again one further on
                    break
                yield match
            else:
                return


@lru_cache(maxsize=1)
def _has_letter_pair(text: str) -> bool:
    # Asked by every pattern of one prompt in turn: the answer is kept.
    return _LETTER_PAIR.search(text) is not None


def english(*alternatives: str) -> str:
    """Each alternative as a whole word (the letter before is Words' check)."""
    return "|".join(words + _WORD_END for words in alternatives)


def each(*heads: str, tail: str = "") -> tuple[str, ...]:
    """``(?:a|b)tail`` written as ``atail``, ``btail``: alternatives that each
    start with a literal, and are tried in the same order."""
    return tuple(head + tail for head in heads)


def either(*alternatives: str) -> str:
    return "|".join(alternatives)


NUMBER = r"\d+(?:\.\d+)?"
SIGNED_NUMBER = re.compile(rf"-?{NUMBER}")
UNSIGNED_NUMBER = re.compile(NUMBER)
WHOLE_NUMBER = re.compile(r"\d+")


def first_number(words: str, pattern: re.Pattern[str] = UNSIGNED_NUMBER) -> str | None:
    """The number in an operation's words ("rotate -45 degrees"), as written."""
    found = pattern.search(words)
    return found.group() if found else None


_IT = r"(?:\s+(?:it|this|the\s+(?:image|picture|photo)))?"
_COLOURS_WORD = r"(?:\s+(?:the\s+)?colou?rs?)?"
_DEGREES = rf"(?:\s+by)?(?:\s*-?{NUMBER}\s*(?:°|degrees?|deg)?)?"
_TURN = r"(?:\s*(?:to\s+the\s+)?(?:left|right|clockwise|counter[\s-]?clockwise|anti[\s-]?clockwise|ccw|cw))?"
_ZH_TURN = rf"旋转\s*(?:-?{NUMBER})?\s*(?:度|°)?"
_ZH_SIDE_TURN = rf"转\s*(?:{NUMBER}\s*(?:度|°))?"
_BLUR_AMOUNT = (
    r"(?:\s+(?:it|this|the\s+(?:image|picture|photo|background)))?"
    rf"(?:\s+(?:by|with\s+radius|radius))?(?:\s*{NUMBER}(?:\s*px)?)?"
)
_BLOCKS = r"(?:\s+(?:with\s+)?(?:blocks?\s+(?:of\s+)?|block\s+size\s+)?\d+(?:\s*px)?)?"
_RESIZE_AMOUNT = (
    r"(?:\s+(?:down|up))?(?:\s+(?:to|by))?"
    rf"(?:\s*(?:{NUMBER}\s*[%％]|\d+\s*[x×*]\s*\d+|{NUMBER}\s*[x×]))?"
)
_ZH_RESIZE_AMOUNT = (
    rf"\s*(?:到|至|为|成)?\s*(?:{NUMBER}\s*[%％]|\d+\s*[x×*]\s*\d+|一半|两倍|一倍|2\s*倍)?"
)
# What a resize's words ask for, read back from them in the pattern's own order.
RESIZE_AMOUNT = re.compile(
    rf"(?P<pct>{NUMBER})\s*[%％]|(?P<w>\d+)\s*[x×*]\s*(?P<h>\d+)|(?P<factor>{NUMBER})\s*[x×]"
)
SHRINK_WORDS = re.compile(r"shrink|down|缩小|一半|half")
ENLARGE_WORDS = re.compile(r"enlarge|up|放大|倍|double")
# In a rotation's words, only its direction can say one of these.
LEFT_WORDS = re.compile(r"left|counter|anti|ccw|逆|左")
LESS_WORDS = re.compile(r"less|lower|low|reduce|decrease|soft|降低|减少|减小|减弱")
_LESS = ("less", "lower", "low", "reduce[ds]?", "decrease[ds]?", "soft(?:er)?")
_ZH_LESS = ("降低", "减少", "减小", "减弱")

# The patterns of each operation, in rule order (see edit_parser).
GRAYSCALE = (
    english(
        r"gr[ae]y\s*-?\s*scale",
        r"black\s*(?:and|&|-)\s*white",
        r"b\s*&\s*w",
        "monochrome",
        "desaturated?",
    ),
    r"黑白|灰度|去色",
)
SEPIA = (
    english("sepia", "vintage", "retro", r"old[\s-]+(?:photo|photograph|film)"),
    r"复古|怀旧|老照片|做旧|泛黄",
)
INVERT = (
    english(*each("invert(?:ed)?", "inverse", "negative", tail=_COLOURS_WORD)),
    r"反色|反相|负片|颜色反转",
)
MIRROR = (
    english(
        "mirror(?:ed)?",
        r"flip(?:ped)?"
        + _IT
        + r"\s+(?:horizontally|horizontal|sideways|left[\s-]+(?:to|and)[\s-]+right)",
        r"horizontal(?:ly)?\s+flip",
    ),
    r"镜像|左右翻转|水平翻转",
)
FLIP = (
    english(
        r"flip(?:ped)?"
        + _IT
        + r"(?:\s+(?:vertically|vertical|upside[\s-]+down|top[\s-]+to[\s-]+bottom))?",
        r"upside[\s-]+down",
        r"vertical(?:ly)?\s+flip",
    ),
    r"上下翻转|垂直翻转|上下颠倒|倒过来|颠倒|翻转",
)
# These two may start on whitespace, so the engine tries them at every
# character; no run of it is longer than two once normalised.
ROTATE = (
    english("rotat(?:e|ed|ion)" + _IT + _DEGREES + _TURN),
    r"(?:逆时针|顺时针|向左|向右)?\s*" + _ZH_TURN,
    either(*each("向左", "向右", "左", "右", tail=_ZH_SIDE_TURN)),
)
BLUR = (
    english(*each("blur(?:red|ry)?", "soften", "defocus(?:ed)?", tail=_BLUR_AMOUNT)),
    either(*each("模糊", "虚化", tail=rf"(?:处理|一下|效果)?\s*(?:{NUMBER})?")),
)
SHARPEN = (
    english("sharpen(?:ed)?", "sharper", "crisper", "deblur", "unblur"),
    r"锐化|更清晰|变清晰|清晰一点|清晰化",
)
BRIGHTER = (
    english(
        "bright(?:en|er)",
        "lighten",
        "lighter",
        r"more\s+bright",
        *each("increase", "raise", tail=r"\s+(?:the\s+)?brightness"),
    ),
    r"更亮|变亮|提亮|调亮|亮一点|亮一些|加亮|增加亮度|提高亮度",
)
DARKER = (
    english(
        "dark(?:en|er)",
        "dimmer",
        *each("decrease", "reduce", "lower", tail=r"\s+(?:the\s+)?brightness"),
    ),
    r"更暗|变暗|调暗|暗一点|暗一些|压暗|降低亮度|减少亮度",
)
CONTRAST = (
    english(*each(*(rf"{word}\s+(?:the\s+)?" for word in _LESS), "", tail="contrast")),
    rf"(?:{'|'.join(_ZH_LESS)})?\s*对比度?",
)
PIXELATE = (
    english(*each(r"pixel(?:ate|ated|ation|i[sz]e|i[sz]ed)", "mosaic", tail=_IT + _BLOCKS)),
    either(*each("像素化", "马赛克", "打码", tail=r"\s*(?:\d+)?")),
)
CROP_SQUARE = (
    english(
        r"crop(?:ped)?" + _IT + r"(?:\s+(?:(?:in)?to\s+|as\s+)?(?:a\s+)?square)?",
        r"square\s+crop",
        "square",
    ),
    either(*each("裁剪", "裁切", tail="(?:成|为)?(?:正方形)?"), "正方形"),
)
RESIZE = (
    english(
        *each(
            "resize",
            "rescale",
            "scale",
            "shrink",
            "enlarge",
            "downscale",
            "upscale",
            tail=_IT + _RESIZE_AMOUNT,
        ),
        *each("half", "double", tail=r"\s+(?:the\s+)?size"),
    ),
    either(
        *each("缩放", "缩小", "放大", "调整大小", "调整尺寸", "改变大小", tail=_ZH_RESIZE_AMOUNT)
    ),
)

BORDER = Words(english("border", "frame[ds]?") + "|边框|相框|画框|加框|描边")
CLAUSE_BREAK = Words(
    "|".join(re.escape(mark) for mark in ",;.!?\n，。；！？、")
    + "|"
    + english("and", "then", "also", "plus")
    + "|然后|接着|之后|并且|再|和|并"
)
# Entered only at the start of a digit run: from inside one, it would rescan
# the rest of the run at every digit.
BORDER_WIDTH = Words(r"(?<!\d)(\d+)\s*(?:px|pixels?|像素)")
THICK = Words(english("thick", "wide", "heavy") + "|粗|宽")
THIN = Words(english("thin", "narrow", "fine") + "|细|窄")
# A colour word that is a thing in an edit ("banana"), as COLOUR matches it.
OBJECT_SPELLINGS = frozenset(spelling for word in OBJECT_WORDS for spelling in (word, word + "色"))
COLOUR = Words(either(english(*EN_COLOUR_WORDS), *each(*ZH_COLOUR_WORDS, tail="色?")))
