"""Text drawn with Unicode TrueType fonts: any character set DICOM allows, as written.

The fonts are shipped in ``ecg_dicom/results/fonts`` (Pillow draws them): DejaVu
Sans for Latin, Greek, Cyrillic and punctuation, and WenQuanYi Micro Hei for the
characters DejaVu lacks (CJK ideographs, kana, hangul), chosen character by
character (:func:`draw_text`), so a name in any character set DICOM allows is
drawn as written; :func:`fit` shrinks or cuts a line to a width.
"""

from __future__ import annotations

from functools import lru_cache
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
    the CJK fallback where that has it, else ``primary`` (drawn as its missing-glyph box)."""
    have, fallback = _coverage(primary), _coverage(CJK_FONT)
    runs: list[tuple[Path, str]] = []
    for char in text:
        code = ord(char)
        path = primary if code in have or code not in fallback or char.isspace() else CJK_FONT
        if runs and runs[-1][0] == path:
            runs[-1] = (path, runs[-1][1] + char)
        else:
            runs.append((path, char))
    return runs


def text_width(text: str, size: int, primary: Path = REGULAR_FONT) -> float:
    """Width in pixels of ``text`` drawn by :func:`draw_text`."""
    return sum(_font(path, size).getlength(run) for path, run in _runs(text, primary))


def fit(text: str, size: int, width: int, primary: Path) -> tuple[str, int]:
    """``text`` and a font size at which it fits ``width`` pixels: down to 70 % of
    ``size``, then cut with an ellipsis."""
    smallest = max(8, round(0.7 * size))
    while size > smallest and text_width(text, size, primary) > width:
        size -= 1
    if text_width(text, size, primary) <= width:
        return text, size
    while len(text) > 1 and text_width(text + "…", size, primary) > width:
        text = text[:-1]
    return text.rstrip() + "…", size


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

