"""Text drawn with Unicode TrueType fonts: any character set DICOM allows, as written.

The fonts are shipped in ``ecg_dicom/results/fonts`` (Pillow draws them): DejaVu
Sans for Latin, Greek, Cyrillic and punctuation, and WenQuanYi Micro Hei for the
characters DejaVu lacks (CJK ideographs, kana, hangul), chosen character by
character (:func:`draw_text`), so a name in any character set DICOM allows is
drawn as written; :func:`fit` shrinks or cuts a line to a width.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import groupby
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageDraw, ImageFont

FONTS = Path(__file__).parent / "fonts"
REGULAR_FONT = FONTS / "DejaVuSans.ttf"
BOLD_FONT = FONTS / "DejaVuSans-Bold.ttf"
#: Fallback for characters DejaVu Sans lacks (CJK, kana, hangul).
CJK_FONT = FONTS / "wqy-microhei.ttc"


@lru_cache(maxsize=4)
def _coverage(path: Path) -> frozenset[int]:
    """The code points a font has a glyph for (its best Unicode cmap)."""
    with TTFont(str(path), lazy=True, fontNumber=0) as font:
        return frozenset(font.getBestCmap())


@lru_cache(maxsize=64)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size=size, index=0)


def _runs(text: str, primary: Path) -> list[tuple[Path, str]]:
    """``text`` cut into runs of one font: ``primary`` where it has the glyph, else
    the CJK fallback where that has it, else ``primary`` (drawn as its missing-glyph box).
    Linear in the text's length (runs are joined once, not grown a character at a time)."""
    have, fallback = _coverage(primary), _coverage(CJK_FONT)

    def font_of(char: str) -> Path:
        code = ord(char)
        return primary if code in have or code not in fallback or char.isspace() else CJK_FONT

    return [(path, "".join(chars)) for path, chars in groupby(text, key=font_of)]


def text_width(text: str, size: int, primary: Path = REGULAR_FONT) -> float:
    """Width in pixels of ``text`` drawn by :func:`draw_text`."""
    return sum(_font(path, size).getlength(run) for path, run in _runs(text, primary))


def fit(text: str, size: int, width: int, primary: Path) -> tuple[str, int]:
    """``text`` and a font size at which it fits ``width`` pixels: down to 70 % of
    ``size``, then cut with an ellipsis.

    Bounded whatever the text's length: no glyph that shows is narrower than one
    pixel, so only the first ``width`` characters are measured (the rest is cut);
    the font size and the cut are found by bisection (O(width log width))."""
    shown = text[: max(width, 1) + 1]
    smallest = max(8, round(0.7 * size))
    if len(shown) == len(text) and text_width(text, size, primary) <= width:
        return text, size
    low = min(smallest, size)  # the largest size in [smallest, size) that fits
    high = max(low, size - 1)
    if len(shown) < len(text):
        high = low  # too long to fit at any size: the smallest, then cut
    while low < high:
        middle = (low + high + 1) // 2
        if text_width(shown, middle, primary) <= width:
            low = middle
        else:
            high = middle - 1
    size = low
    if len(shown) == len(text) and text_width(text, size, primary) <= width:
        return text, size
    cut_low, cut_high = 0, len(shown)  # the longest prefix that fits with its ellipsis
    while cut_low < cut_high:
        middle = (cut_low + cut_high + 1) // 2
        if text_width(shown[:middle] + "…", size, primary) <= width:
            cut_low = middle
        else:
            cut_high = middle - 1
    return shown[: max(cut_low, 1)].rstrip() + "…", size


def draw_text(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    text: str,
    size: int,
    colour: tuple[int, int, int],
    primary: Path = REGULAR_FONT,
) -> None:
    """``text`` with its baseline's left end at ``origin``, each character in a font
    that has it."""
    x, y = float(origin[0]), origin[1]
    for path, run in _runs(text, primary):
        font = _font(path, size)
        draw.text((x, y), run, font=font, fill=colour, anchor="ls")
        x += font.getlength(run)

