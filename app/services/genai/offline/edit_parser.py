"""The edit-prompt parser: which steps a prompt names, in the order it names
them, in English or Chinese (the words are in edit_words).

It runs in time linear in the prompt, times a log for the border clauses:
each pattern scans the prompt once; a match is checked against the words
already claimed with a bitmap, not against a list of spans, and the scans
after the rules run on the prompt with the claimed words blanked out; the
clause breaks, colours and border widths are found once and looked up by
bisection; the colour a border takes is found by union-find, never by a
rescan. Only the operations that will run are built.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import itemgetter

from app.services.genai.offline import edit_words as words
from app.services.genai.offline.colours import COLOURS, SPELLINGS, NamedColour
from app.services.genai.offline.edit_ops import (
    MAX_BORDER_PX,
    Blur,
    Border,
    Brightness,
    Contrast,
    CropSquare,
    EditOperation,
    Flip,
    Grayscale,
    Invert,
    Mirror,
    Pixelate,
    Resize,
    Rotate,
    Sepia,
    Sharpen,
    Tint,
)

# Numbers past this mean "as much as allowed"; the steps clamp further.
_LARGEST = 1e9


def _number(text: str) -> float:
    return min(float(text), _LARGEST)  # float() reads any length; a huge one is inf


def _whole(text: str) -> int:
    digits = text.lstrip("0")
    # int() refuses more than 4300 digits; far fewer already exceed every bound.
    return int(_LARGEST) if len(digits) > 9 else int(digits or "0")


def _rotate(match: re.Match[str]) -> Rotate:
    degrees = words.first_number(match.group(), words.SIGNED_NUMBER)
    turn = _number(degrees) if degrees else 90.0
    return Rotate(-turn if words.LEFT_WORDS.search(match.group()) else turn)


def _blur(match: re.Match[str]) -> Blur:
    radius = words.first_number(match.group())
    return Blur(_number(radius) if radius else None)


def _pixelate(match: re.Match[str]) -> Pixelate:
    block = words.first_number(match.group(), words.WHOLE_NUMBER)
    return Pixelate(_whole(block) if block else None)


def _contrast(match: re.Match[str]) -> Contrast:
    return Contrast(less=bool(words.LESS_WORDS.search(match.group())))


def _resize(match: re.Match[str]) -> Resize:
    said = match.group()
    amount = words.RESIZE_AMOUNT.search(said)
    if amount and amount.group("w"):
        return Resize(size=(_whole(amount.group("w")), _whole(amount.group("h"))))
    if amount and amount.group("pct"):
        return Resize(scale=_number(amount.group("pct")) / 100)
    if amount and amount.group("factor"):
        return Resize(scale=_number(amount.group("factor")))
    enlarge = words.ENLARGE_WORDS.search(said) and not words.SHRINK_WORDS.search(said)
    return Resize(scale=2.0 if enlarge else 0.5)


@dataclass(frozen=True)
class _Rule:
    patterns: tuple[words.Words, ...]
    build: Callable[[re.Match[str]], EditOperation]


def _rule(build: Callable[[re.Match[str]], EditOperation], patterns: tuple[str, ...]) -> _Rule:
    return _Rule(tuple(words.Words(pattern) for pattern in patterns), build)


# Earlier rules win where matches overlap: "flip horizontally" is a mirror,
# not a flip; "black and white" is grayscale, not two tints. Within a rule,
# so do earlier patterns.
_RULES: tuple[_Rule, ...] = (
    _rule(lambda _: Grayscale(), words.GRAYSCALE),
    _rule(lambda _: Sepia(), words.SEPIA),
    _rule(lambda _: Invert(), words.INVERT),
    _rule(lambda _: Mirror(), words.MIRROR),
    _rule(lambda _: Flip(), words.FLIP),
    _rule(_rotate, words.ROTATE),
    _rule(_blur, words.BLUR),
    _rule(lambda _: Sharpen(), words.SHARPEN),
    _rule(lambda _: Brightness(brighter=True), words.BRIGHTER),
    _rule(lambda _: Brightness(brighter=False), words.DARKER),
    _rule(_contrast, words.CONTRAST),
    _rule(_pixelate, words.PIXELATE),
    _rule(lambda _: CropSquare(), words.CROP_SQUARE),
    _rule(_resize, words.RESIZE),
)


@dataclass(frozen=True)
class ReadEdit:
    """The first ``limit`` operations a prompt names, in its order, and how
    many it names in all."""

    operations: list[EditOperation]
    named: int


def read_edit(prompt: str, limit: int | None = None) -> ReadEdit:
    """The operations a prompt names, in the order it names them; only the
    first ``limit`` are built (all are found: which words each one claims
    decides what the others are)."""
    text, origin = words.normalise(prompt)
    held = bytearray(len(text))  # characters some operation's words already claim
    spans: list[tuple[int, int]] = []
    named: list[tuple[int, Callable[[], EditOperation]]] = []
    for rule in _RULES:
        for pattern in rule.patterns:
            for match in pattern.finditer(text):
                start, end = match.span()
                if end > start and held.find(1, start, end) < 0:
                    held[start:end] = b"\x01" * (end - start)
                    spans.append((start, end))
                    named.append((start, partial(rule.build, match)))

    # Border words, colours and clause breaks never straddle the edge of an
    # operation's words, so looking for them with those words blanked out
    # finds exactly the ones outside, with no check per match.
    rest = _blank(text, spans)
    borders = list(words.BORDER.finditer(rest))
    colours = [m for m in words.COLOUR.finditer(rest) if m.group() not in words.OBJECT_SPELLINGS]
    if borders:
        colours = _read_borders(text, rest, origin, borders, colours, named)
    named.extend((match.start(), partial(_tint, match.group())) for match in colours)

    named.sort(key=itemgetter(0))
    chosen = named if limit is None else named[:limit]
    return ReadEdit([build() for _, build in chosen], len(named))


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with every character of ``spans`` (which do not overlap) as NUL."""
    pieces, done = [], 0
    for start, end in sorted(spans):
        pieces += (text[done:start], "\0" * (end - start))
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def parse_edit_operations(prompt: str) -> list[EditOperation]:
    """Every operation a prompt names, in the order it names them."""
    return read_edit(prompt).operations


def _tint(word: str) -> Tint:
    return Tint(SPELLINGS[word])


def _read_borders(
    text: str,
    rest: str,
    origin: list[int],
    borders: list[re.Match[str]],
    colours: list[re.Match[str]],
    named: list[tuple[int, Callable[[], EditOperation]]],
) -> list[re.Match[str]]:
    """Add the borders to ``named``; the colours none of them took.

    A border takes its colour and width from its own clause ("a thick red
    border", "边框用蓝色"): the colour nearest the word (the earlier one on a
    tie), which is then not also a tint. Clauses and colours are found by
    bisection; the nearest colour not yet taken by union-find with path
    compression, so a thousand borders next to a thousand colours cost a
    thousand steps, not a million. Only the borders that are built read
    their clause for a width and a weight.
    """
    # A break inside another operation's words ("black and white") ends no clause.
    breaks = [match.span() for match in words.CLAUSE_BREAK.finditer(rest)]
    clauses = _Clauses(text, breaks)
    starts = [match.start() for match in colours]
    count = len(colours)
    # For each colour: itself while free; once taken, a pointer towards free ones.
    leftwards, rightwards = list(range(count)), list(range(count))
    for keyword in borders:
        keyword_start, keyword_end = keyword.span()
        colour = COLOURS["white"]
        split = bisect_left(starts, keyword_start)
        left, right = _free(leftwards, split - 1, -1), _free(rightwards, split, count)
        if left >= 0 or right < count:
            start, end = clauses.around(keyword_start, keyword_end)
            here, best, distance = origin[keyword_start], -1, 0
            if left >= 0 and starts[left] >= start:
                best, distance = left, here - origin[starts[left]]
            if right < count and colours[right].end() <= end:
                best = right if best < 0 or origin[starts[right]] - here < distance else best
            if best >= 0:
                leftwards[best], rightwards[best] = best - 1, best + 1
                colour = SPELLINGS[colours[best].group()]
        named.append((keyword_start, partial(clauses.border, colour, keyword_start, keyword_end)))
    return [match for index, match in enumerate(colours) if leftwards[index] == index]


def _free(pointers: list[int], index: int, outside: int) -> int:
    """The nearest free colour from ``index`` on in the pointers' direction,
    or ``outside``; points every colour passed straight at it."""
    root = index
    while root != outside and pointers[root] != root:
        root = pointers[root]
    while index != outside and pointers[index] != index:
        pointers[index], index = root, pointers[index]
    return root


class _Clauses:
    """The clause around a word, and what a border's clause says about it,
    by bisection over positions found once."""

    def __init__(self, text: str, breaks: list[tuple[int, int]]) -> None:
        self._text = text
        self._break_starts = [start for start, _ in breaks]
        self._break_ends = [end for _, end in breaks]
        self._found: dict[words.Words, tuple[list[int], list[re.Match[str]]]] = {}

    def around(self, start: int, end: int) -> tuple[int, int]:
        before = bisect_right(self._break_ends, start) - 1  # the last break ending <= start
        after = bisect_left(self._break_starts, end)  # the first break starting >= end
        return (
            self._break_ends[before] if before >= 0 else 0,
            self._break_starts[after] if after < len(self._break_starts) else len(self._text),
        )

    def first(self, pattern: words.Words, start: int, end: int) -> re.Match[str] | None:
        """What ``pattern`` finds first in ``text[start:end]``, from one scan of
        the text. (A match that runs into the clause across its break, as
        "5\npx" can, holds nothing there that could start another.)"""
        if pattern not in self._found:
            matches = list(pattern.finditer(self._text))
            self._found[pattern] = ([match.start() for match in matches], matches)
        starts, matches = self._found[pattern]
        index = bisect_left(starts, start)
        if index < len(matches) and matches[index].end() <= end:
            return matches[index]
        return None

    def border(self, colour: NamedColour, keyword_start: int, keyword_end: int) -> Border:
        """A border of ``colour`` with the width and weight its clause names."""
        start, end = self.around(keyword_start, keyword_end)
        width = self.first(words.BORDER_WIDTH, start, end)
        if self.first(words.THICK, start, end):
            weight = 2.0
        elif self.first(words.THIN, start, end):
            weight = 0.5
        else:
            weight = 1.0
        return Border(colour, min(_whole(width.group(1)), MAX_BORDER_PX) if width else None, weight)
