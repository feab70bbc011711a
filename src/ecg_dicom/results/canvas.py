"""Where the page sits in the annotated image: the geometry the SC and the SR share.

The annotated image is the page the model saw, unchanged, with a band added
above it (banner, decision, identity) and one below it (the model).  Because
the bands are only *added*, the page sits in the annotated image at the fixed
offset ``(0, top)`` given by :func:`layout_for`, which depends on the page width
only; :func:`to_sc_pixels` maps a page box into the pixel space of the annotated
image, and it is the coordinates in that space that the SR carries as its image
regions (PS3.3 C.18.6 SCOORD: column/row of the referenced image, origin at the
top left pixel's top left corner).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecg_dicom.records import Page


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
