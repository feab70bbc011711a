"""Draw the detector's result onto the page: the picture of the Secondary Capture.

The annotated image is the page the model saw, unchanged, with two bands added
around it, so that no text ever hides a part of the tracing:

* a **top band**: the red "AI result — not for diagnostic use" banner; then the
  decision, large and bold, in words a reader understands ("Abnormal — Acute MI
  (probability 0.91)", "Normal (probability 0.97)", "Not interpretable: <reason>");
  then who and when: the patient's name and ID, birth date and study date/time
  (:func:`identity_line`), so a printed or exported picture still says whose
  ECG it is;
* a **bottom band**: the model name and a short form of its version (the
  weights' checksum).

Each detection is drawn over the chart as a rectangle with its class (as
:data:`DISPLAY_NAMES` names it) and confidence; boxes that do not count for the
decision are drawn thin and grey.  Because the bands are only *added* (above and
below), the page sits in the annotated image at the fixed offset ``(0, top)``
given by :func:`layout_for`, which depends on the page width only;
:func:`to_sc_pixels` maps a page box into the pixel space of the annotated
image, and it is the coordinates in that space that the SR carries as its image
regions (PS3.3 C.18.6 SCOORD: column/row of the referenced image, origin at the
top left pixel's top left corner).

Text is drawn with TrueType fonts shipped in ``ecg_dicom/results/fonts`` (Pillow): DejaVu
Sans for Latin, Greek, Cyrillic and punctuation, and WenQuanYi Micro Hei for
the characters DejaVu lacks (CJK ideographs, kana, hangul), chosen character by
character, so a name in any character set DICOM allows is drawn as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset
from pydicom.valuerep import PersonName

from ecg_dicom.records import NORMAL_CLASS, NOT_INTERPRETABLE, Classification, Page

#: The notice on every annotated image.
BANNER_TEXT = "AI result — not for diagnostic use"
#: The reason given when the result has none: the model found nothing.
NO_BOX_REASON = "the model detected nothing on this page"
#: Class names for people; the SR keeps the data set's names as the detector's classes.
DISPLAY_NAMES: dict[str, str] = {
    "ECG HB": "Abnormal heartbeat",
    "History_MI": "History of MI",
    "MI-ECG": "Acute MI",
    "Normal-ECG": "Normal",
}
#: Number of characters of the model version (a hex checksum) shown on the image.
SHORT_VERSION_LENGTH = 12

FONTS = Path(__file__).parent / "fonts"
REGULAR_FONT = FONTS / "DejaVuSans.ttf"
BOLD_FONT = FONTS / "DejaVuSans-Bold.ttf"
#: Fallback for characters DejaVu Sans lacks (CJK, kana, hangul).
CJK_FONT = FONTS / "wqy-microhei.ttc"

# RGB colours (the page is RGB, not OpenCV's BGR).
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BANNER_RED = (190, 20, 20)
_NORMAL_GREEN = (0, 140, 60)
_NOT_COUNTED_GREY = (150, 150, 150)
_CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "ECG HB": (230, 120, 0),
    "History_MI": (140, 40, 200),
    "MI-ECG": (220, 0, 0),
    NORMAL_CLASS: _NORMAL_GREEN,
}
_OTHER_COLOUR = (0, 90, 220)


@dataclass(frozen=True)
class Layout:
    """Where the page sits in the annotated image, and the sizes of the text.

    The page occupies rows ``[top, top + page height)`` and all columns of the
    annotated image; ``bottom`` rows follow it.  The top band holds three rows:
    the banner ``[0, banner)``, the decision ``[banner, banner + decision_row)``
    and the identity line below it.  Font sizes are in pixels.
    """

    top: int
    bottom: int
    scale: float
    thickness: int
    banner: int
    decision_row: int
    text_size: int
    decision_size: int
    tag_size: int

    @property
    def offset(self) -> tuple[int, int]:
        """(dx, dy) to add to page pixels to get annotated-image pixels."""
        return (0, self.top)

    @property
    def margin(self) -> int:
        return max(4, round(16 * self.scale))


def layout_for(page: Page) -> Layout:
    """The layout for a page: sizes scale with the page width (1600 px, the
    training pages' width, is 1); nothing depends on the result, so the SR's
    coordinates (:func:`to_sc_pixels`) never depend on what is written."""
    width = int(page.image.shape[1])
    scale = float(min(max(width / 1600.0, 0.45), 3.0))
    text_size = max(11, round(26 * scale))
    decision_size = max(16, round(44 * scale))
    banner = round(1.7 * max(12, round(30 * scale)))
    decision_row = round(1.5 * decision_size)
    identity_row = round(1.7 * text_size)
    return Layout(
        top=banner + decision_row + identity_row,
        bottom=round(1.9 * text_size),
        scale=scale,
        thickness=max(1, round(2 * scale)),
        banner=banner,
        decision_row=decision_row,
        text_size=text_size,
        decision_size=decision_size,
        tag_size=max(10, round(22 * scale)),
    )


def to_sc_pixels(
    box: tuple[float, float, float, float], page: Page
) -> tuple[float, float, float, float]:
    """A page box (x0, y0, x1, y1), clipped to the page, in annotated-image pixels."""
    height, width = page.image.shape[:2]
    dx, dy = layout_for(page).offset
    x0, y0, x1, y1 = box
    x0, x1 = sorted((min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))))
    y0, y1 = sorted((min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))))
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def short_version(model_version: str) -> str:
    """The first characters of the model version (a SHA-256 in practice)."""
    return model_version[:SHORT_VERSION_LENGTH]


def display_name(class_name: str) -> str:
    """A detector class as a reader understands it (:data:`DISPLAY_NAMES`)."""
    return DISPLAY_NAMES.get(class_name, class_name)


# --- what the image says --------------------------------------------------------------


def _not_interpretable(result: Classification) -> bool:
    return result.label == NOT_INTERPRETABLE or result.probability is None


def _abnormal_class(result: Classification) -> str | None:
    abnormal = [d for d in result.decisive if d.class_name != NORMAL_CLASS]
    if abnormal:
        return max(abnormal, key=lambda d: d.confidence).class_name
    if result.class_name and result.class_name != NORMAL_CLASS:
        return result.class_name
    return None


def decision_line(result: Classification) -> str:
    """The decision in words, as drawn large at the top of the image."""
    if _not_interpretable(result):
        return f"{NOT_INTERPRETABLE}: {result.reason.strip() or NO_BOX_REASON}"
    suffix = f" (probability {result.probability:.2f})"
    if result.label == "Abnormal":
        cls = _abnormal_class(result)
        named = f" — {display_name(cls)}" if cls else ""
        return f"Abnormal{named}{suffix}"
    return f"Normal{suffix}"


def _decision_colour(result: Classification) -> tuple[int, int, int]:
    if _not_interpretable(result):
        return _BLACK
    return _NORMAL_GREEN if result.label == "Normal" else _BANNER_RED


def person_name_text(name: object) -> str:
    """A Patient's Name (PN) for people: "FAMILY, Given Middle", each component
    group (alphabetic, ideographic; PS3.5 6.2.1.2) shown, ideographic in brackets."""
    pn = name if isinstance(name, PersonName) else PersonName(str(name or ""))
    groups = [g for g in (pn.alphabetic, pn.ideographic) if g]
    texts = []
    for index, group in enumerate(groups):
        family, given, middle, prefix, suffix = (group.split("^") + [""] * 5)[:5]
        first = " ".join(p for p in (prefix, given, middle) if p)
        joiner = ", " if index == 0 and not _is_cjk(group) else " "
        text = joiner.join(p for p in (family, first) if p)
        texts.append(f"{text} {suffix}".strip())
    if len(texts) > 1:
        return f"{texts[0]} ({texts[1]})"
    return texts[0] if texts else ""


def _is_cjk(text: str) -> bool:
    return any(ord(c) >= 0x2E80 for c in text)


def _date(value: object) -> str:
    text = str(value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else text


def _time(value: object) -> str:
    text = str(value or "").strip()
    return f"{text[:2]}:{text[2:4]}" if len(text) >= 4 and text[:4].isdigit() else ""


def identity_line(source: Dataset) -> str:
    """Whose ECG and when, as drawn under the decision: Patient's Name, Patient ID,
    Patient's Birth Date and Study Date/Time of ``source`` (those it has)."""
    parts = []
    name = person_name_text(source.get("PatientName", ""))
    if name:
        parts.append(f"Patient: {name}")
    if str(source.get("PatientID", "") or "").strip():
        parts.append(f"ID: {str(source.PatientID).strip()}")
    if source.get("PatientBirthDate"):
        parts.append(f"Born: {_date(source.PatientBirthDate)}")
    if source.get("StudyDate"):
        when = f"{_date(source.StudyDate)} {_time(source.get('StudyTime'))}".strip()
        parts.append(f"Study: {when}")
    return "    ".join(parts)


# --- text with Unicode fonts ------------------------------------------------------------


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


def _fit(text: str, size: int, width: int, primary: Path) -> tuple[str, int]:
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


def _row_text(
    draw: ImageDraw.ImageDraw,
    text: str,
    row: tuple[int, int],
    size: int,
    colour: tuple[int, int, int],
    layout: Layout,
    width: int,
    primary: Path = REGULAR_FONT,
) -> None:
    """``text`` left-aligned and vertically centred in the rows ``row`` (y0, y1)."""
    text, size = _fit(text, size, width - 2 * layout.margin, primary)
    baseline = row[0] + round((row[1] - row[0]) / 2 + 0.36 * size)
    draw_text(draw, (layout.margin, baseline), text, size, colour, primary)


# --- the picture ------------------------------------------------------------------------


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"the page must be uint8, not {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"the page must be H x W x 3 (RGB), not {image.shape}")


def _tag(
    draw: ImageDraw.ImageDraw,
    text: str,
    anchor: tuple[int, int],
    layout: Layout,
    colour: tuple[int, int, int],
    limits: tuple[int, int],
    canvas_width: int,
) -> None:
    """A filled tag with ``text`` just above ``anchor`` (inside the box when there
    is no room above, so it never covers the top band)."""
    size = layout.tag_size
    pad = max(2, round(4 * layout.scale))
    tw = round(text_width(text, size))
    th = round(1.25 * size)
    x = min(max(anchor[0], 0), max(canvas_width - tw - 2 * pad, 0))
    y_top = anchor[1] - th
    if y_top < limits[0]:
        y_top = anchor[1]
    y_top = min(y_top, max(limits[1] - th, limits[0]))
    draw.rectangle((x, y_top, x + tw + 2 * pad - 1, y_top + th - 1), fill=colour)
    draw_text(draw, (x + pad, y_top + round(0.97 * size)), text, size, _WHITE)


def draw_result(page: Page, result: Classification, identity: str = "") -> np.ndarray:
    """The annotated page (RGB, uint8): the page at offset ``layout_for(page).offset``
    with every detection boxed and labelled, the banner, the decision and
    ``identity`` (:func:`identity_line` of the source) in the top band and the
    model in the bottom band.  Pure: ``page`` is not modified."""
    image = _rgb(page.image)
    layout = layout_for(page)
    height, width = image.shape[:2]
    canvas = np.full((layout.top + height + layout.bottom, width, 3), 255, dtype=np.uint8)
    canvas[layout.top : layout.top + height] = image

    decisive = set(result.decisive)
    # Not-counted boxes first, so the decisive ones are drawn over them.
    ordered = sorted(result.detections, key=lambda d: d in decisive)
    tags: list[tuple[str, tuple[int, int], tuple[int, int, int]]] = []
    for det in ordered:
        x0, y0, x1, y1 = (round(v) for v in to_sc_pixels(det.box, page))
        counted = det in decisive
        colour = _CLASS_COLOURS.get(det.class_name, _OTHER_COLOUR) if counted else (
            _NOT_COUNTED_GREY
        )
        thickness = layout.thickness if counted else max(1, layout.thickness // 2)
        cv2.rectangle(canvas, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, thickness)
        text = f"{display_name(det.class_name)} {det.confidence:.2f}"
        tags.append((text if counted else f"{text} (not counted)", (x0, y0), colour))

    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for text, anchor, colour in tags:
        _tag(draw, text, anchor, layout, colour, (layout.top, layout.top + height), width)

    # Top band: red banner, the decision, then whose ECG it is.
    draw.rectangle((0, 0, width - 1, layout.banner - 1), fill=_BANNER_RED)
    banner_size = round(0.6 * layout.banner)
    _row_text(draw, BANNER_TEXT, (0, layout.banner), banner_size, _WHITE, layout, width)
    decision_rows = (layout.banner, layout.banner + layout.decision_row)
    _row_text(draw, decision_line(result), decision_rows, layout.decision_size,
              _decision_colour(result), layout, width, BOLD_FONT)
    if identity:
        _row_text(draw, identity, (decision_rows[1], layout.top), layout.text_size, _BLACK,
                  layout, width)

    # Bottom band: the model.
    model = f"Model: {result.model_name}    version {short_version(result.model_version)}"
    _row_text(draw, model, (layout.top + height, layout.top + height + layout.bottom),
              layout.text_size, _BLACK, layout, width)
    return np.array(picture)
