"""Draw the detector's result onto the page: the picture of the Secondary Capture.

The annotated image is the page the model saw, unchanged, with two bands added
around it, so that no text ever hides a part of the tracing:

* a **top band**: the red "AI result - not for diagnostic use" banner, then the
  overall label (Normal / Abnormal / No finding) with the detected class and its
  confidence;
* a **bottom band**: the model name and a short form of its version (the
  weights' checksum).

Each detection is drawn over the chart as a rectangle with its class and
confidence.  Because the bands are only *added* (above and below), the page
sits in the annotated image at the fixed offset ``(0, top)`` given by
:func:`layout_for`; :func:`to_sc_pixels` maps a page box into the pixel space
of the annotated image, and it is the coordinates in that space that the SR
carries as its image regions (PS3.3 C.18.6 SCOORD: column/row of the
referenced image, origin at the top left pixel's top left corner).

OpenCV's Hershey fonts draw ASCII only, so the banner's dash is "-" rather
than the em dash of the written notice.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ecg_dicom.stages import NORMAL_CLASS, Classification, Page

#: The notice on every annotated image (ASCII: the Hershey fonts have no em dash).
BANNER_TEXT = "AI result - not for diagnostic use"
#: What the image says when the model found nothing.
NO_FINDING_TEXT = "No finding: the model detected nothing on this page"
#: Number of characters of the model version (a hex checksum) shown on the image.
SHORT_VERSION_LENGTH = 12

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# RGB colours (the page is RGB, not OpenCV's BGR).
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BANNER_RED = (190, 20, 20)
_NORMAL_GREEN = (0, 140, 60)
_CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "ECG HB": (230, 120, 0),
    "History_MI": (140, 40, 200),
    "MI-ECG": (220, 0, 0),
    NORMAL_CLASS: _NORMAL_GREEN,
}
_OTHER_COLOUR = (0, 90, 220)


@dataclass(frozen=True)
class Layout:
    """Where the page sits in the annotated image, and the text size.

    The page occupies rows ``[top, top + page height)`` and all columns of the
    annotated image; ``bottom`` rows follow it.
    """

    top: int
    bottom: int
    scale: float
    thickness: int
    line_height: int

    @property
    def offset(self) -> tuple[int, int]:
        """(dx, dy) to add to page pixels to get annotated-image pixels."""
        return (0, self.top)


def layout_for(page: Page) -> Layout:
    """The layout for a page: text scaled with the page width, bands sized to fit
    three lines on top (banner, result) and one below (model)."""
    width = int(page.image.shape[1])
    scale = float(min(max(width / 1600.0, 0.45), 3.0))
    thickness = max(1, round(2 * scale))
    line_height = round(40 * scale)
    return Layout(
        top=3 * line_height,
        bottom=line_height + line_height // 2,
        scale=scale,
        thickness=thickness,
        line_height=line_height,
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


def summary_line(result: Classification) -> str:
    """The overall result in words, as drawn on the image."""
    if result.label == "No finding" or not result.detections:
        return NO_FINDING_TEXT
    cls = f" - {result.class_name}" if result.class_name else ""
    return f"Result: {result.label}{cls} ({result.confidence:.2f})"


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"the page must be uint8, not {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"the page must be H x W x 3 (RGB), not {image.shape}")


def _text(
    canvas: np.ndarray,
    text: str,
    origin: tuple[int, int],
    layout: Layout,
    colour: tuple[int, int, int],
    scale: float | None = None,
) -> None:
    cv2.putText(
        canvas, text, origin, _FONT, scale or layout.scale, colour, layout.thickness, cv2.LINE_AA
    )


def _label_box(
    canvas: np.ndarray,
    text: str,
    anchor: tuple[int, int],
    layout: Layout,
    colour: tuple[int, int, int],
    limits: tuple[int, int],
) -> None:
    """A filled tag with ``text`` just above ``anchor`` (inside the box when there
    is no room above, so it never covers the top band)."""
    scale = layout.scale * 0.8
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, layout.thickness)
    x = min(max(anchor[0], 0), max(canvas.shape[1] - tw - 4, 0))
    y_top = anchor[1] - th - base - 4
    if y_top < limits[0]:
        y_top = anchor[1]
    y_top = min(y_top, max(limits[1] - th - base - 4, limits[0]))
    cv2.rectangle(canvas, (x, y_top), (x + tw + 4, y_top + th + base + 4), colour, -1)
    _text(canvas, text, (x + 2, y_top + th + 2), layout, _WHITE, scale)


def draw_result(page: Page, result: Classification) -> np.ndarray:
    """The annotated page (RGB, uint8): the page at offset ``layout_for(page).offset``
    with every detection boxed and labelled, the banner and the overall label
    in the top band and the model in the bottom band.  Pure: ``page`` is not modified."""
    image = _rgb(page.image)
    layout = layout_for(page)
    height, width = image.shape[:2]
    canvas = np.full((layout.top + height + layout.bottom, width, 3), 255, dtype=np.uint8)
    canvas[layout.top : layout.top + height] = image

    # Top band: red banner line, then the result line.
    lh = layout.line_height
    cv2.rectangle(canvas, (0, 0), (width - 1, int(1.4 * lh)), _BANNER_RED, -1)
    _text(canvas, BANNER_TEXT, (lh // 3, int(1.0 * lh)), layout, _WHITE, layout.scale * 1.2)
    summary_colour = (
        _NORMAL_GREEN
        if result.label == "Normal"
        else _BLACK
        if result.label == "No finding"
        else _BANNER_RED
    )
    _text(canvas, summary_line(result), (lh // 3, int(2.55 * lh)), layout, summary_colour)

    # Boxes over the chart.
    for det in result.detections:
        x0, y0, x1, y1 = (round(v) for v in to_sc_pixels(det.box, page))
        colour = _CLASS_COLOURS.get(det.class_name, _OTHER_COLOUR)
        cv2.rectangle(canvas, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, layout.thickness)
        _label_box(
            canvas,
            f"{det.class_name} {det.confidence:.2f}",
            (x0, y0),
            layout,
            colour,
            (layout.top, layout.top + height),
        )

    # Bottom band: the model.
    model = f"Model: {result.model_name}  version {short_version(result.model_version)}"
    _text(canvas, model, (lh // 3, layout.top + height + lh), layout, _BLACK)
    return canvas
