"""A picture of a paper ECG -> the upright page the detector was trained on.

The detector learnt from scanned cart pages: upright, the chart frame axis-aligned,
white outside it.  Users send phone photos and crooked scans (issue 14), and a page
tilted by 7 degrees already changes the model's call.  :func:`straighten` finds the
chart on the picture and warps it back, once, at full size:

1. **Ink map**, on a copy shrunk by a whole factor to at most
   :data:`~ecg_dicom.pages.ink.WORK_SIZE` px on its long side (so the cost does not depend
   on the picture's resolution): the darkest channel of each pixel (a pink, red, green or
   grey grid and black traces are all darker than the paper in one channel at least)
   relative to the local paper brightness (a closing, which removes lines and traces but
   keeps larger areas: shadows and uneven light cancel out), 0 = paper, 1 = black. Nothing
   counts where that "paper" is less than :data:`~ecg_dicom.pages.ink.PAPER_SHARE` as bright
   as the brightest (a desk or a dark border around a photographed page).
2. **Rotation** by a projection-profile search: the ink map is rotated by each candidate
   angle, and the angle whose row and column profiles are sharpest (largest squared
   differences between neighbouring sums, :func:`~ecg_dicom.pages.ink.line_sharpness`) is
   the one that makes grid lines, frame edges and trace baselines axis-aligned.  Coarse to
   fine (:data:`~ecg_dicom.pages.ink.SEARCH_PLAN`): 1 degree steps over
   +-:data:`~ecg_dicom.pages.ink.MAX_ANGLE_DEG` on the copy shrunk 4 times (200 px for a
   1600 px page), then 0.25 and 0.05 degree steps on the copy shrunk twice, each refined by
   a parabola through the best three.  The sharpness at the best angle over the sharpness 45
   degrees away (where every line is smeared) says whether there are lines at all
   (``found``: at least :data:`~ecg_dicom.pages.ink.MIN_LINE_CONTRAST`).
3. **Perspective**: on the ink map made upright (shrunk twice), the chart is the largest
   blob of ink and grid once closed (:func:`~ecg_dicom.pages.chart_edges.chart_region`); a
   line is fitted to each of its four edges
   (:func:`~ecg_dicom.pages.chart_edges.find_edges`: a vote over slopes and offsets, so a
   corner cut off by the picture's border or a trace crossing the frame does not bend it),
   leaving out points where the picture itself ends. When all four edges hold
   (:data:`~ecg_dicom.pages.chart_edges.MIN_EDGE_SHARE` of their points on the line) and
   opposite edges are more than :data:`PERSPECTIVE_DEG` from parallel, the quadrilateral is
   mapped onto a rectangle of its mean width and height around its centre
   (``cv2.getPerspectiveTransform``); else the rotation alone is applied
   (``cv2.getRotationMatrix2D``).
4. One warp of the full-size picture (bilinear, white where the picture has no pixels); when
   the four edges were found, everything outside the chart's bounding box is painted white,
   as on the training pages.

A page already straight (|angle| < :data:`STRAIGHT_DEG`, no perspective) and a
picture where no chart was found come back **unchanged** (the same array,
method "none"): the training pages and rendered waveform pages are not touched.

Sign convention: ``angle_deg`` is the chart's tilt in the picture, positive
counter-clockwise as the picture is viewed (OpenCV's ``getRotationMatrix2D``
convention, y down); the page is rotated by ``-angle_deg`` to straighten it.
``homography`` maps input pixel coordinates to output ones (3x3, rotation
included), None when the page is unchanged.

Limits: tilts beyond +-:data:`~ecg_dicom.pages.ink.MAX_ANGLE_DEG` (a page upside down or
sideways) are not searched; perspective is corrected only when all four chart edges are
visible (a cropped chart is only rotated) and edges within about 5.7 degrees of the upright
page's axes; a chart whose four edges were found is moved to the training pages' layout
(:func:`training_layout`), but a cropped or frameless chart photographed small stays small
on the page; a page bent or curled is not flattened."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ecg_dicom.pages.chart_edges import EDGE_LEVEL, edge_corners, edge_skew, find_edges
from ecg_dicom.pages.ink import (
    MIN_LINE_CONTRAST,
    WORK_SIZE,
    darkest_channel,
    find_angle,
    ink_levels,
    ink_map,
    rotate,
    shrink,
)
from ecg_dicom.records import Page

#: A picture whose brightest pixels (99th percentile of the darkest channel) stay below
#: this has no paper showing (black, or far too dark): nothing is done.
MIN_PAPER_LEVEL = 48.0
#: Below this tilt (degrees) a page counts as straight and is returned unchanged.
STRAIGHT_DEG = 0.2
#: Opposite chart edges further apart than this (degrees) mean perspective.
PERSPECTIVE_DEG = 0.4

_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Straightened:
    """What :func:`straighten` did to a picture.

    ``page``: the straightened RGB page (the input array itself when unchanged);
    ``angle_deg``: the tilt found (module docstring for the sign); ``homography``:
    input -> output pixels, None when unchanged; ``method``: "none", "rotation" or
    "perspective"; ``found``: whether chart lines (grid, frame, traces) were found.
    """

    page: np.ndarray
    angle_deg: float
    homography: np.ndarray | None
    method: str
    found: bool

    def describe(self) -> str:
        """One line for logs and records, e.g. "rotation -7.02 deg"."""
        if self.method == "none":
            return "none" if self.found else "none (no chart lines found)"
        return f"{self.method} {self.angle_deg:+.2f} deg"


def _scale_matrices(factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Input -> shrunk pixel coordinates and back (pixel centres; see :func:`shrink`)."""
    offset = (1.0 / factor - 1.0) / 2.0
    to_small = np.array([[1.0 / factor, 0.0, offset], [0.0, 1.0 / factor, offset], [0, 0, 1.0]])
    return to_small, np.linalg.inv(to_small)


def _rotation(shape: tuple[int, ...], angle: float) -> np.ndarray:
    """3x3 rotation by ``angle`` degrees about the centre of an image of ``shape``."""
    h, w = shape[:2]
    return np.vstack([cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0), [0.0, 0.0, 1.0]])


def straighten(rgb: np.ndarray) -> Straightened:
    """The chart on ``rgb`` (H x W x 3 uint8) made upright (module docstring)."""
    h, w = rgb.shape[:2]
    factor = max(1, -(-max(h, w) // WORK_SIZE))
    darkest = darkest_channel(shrink(rgb, factor))
    if float(np.percentile(darkest[::4, ::4], 99)) < MIN_PAPER_LEVEL:
        return Straightened(rgb, 0.0, None, "none", False)  # no paper to find lines on
    levels = ink_levels(ink_map(darkest))
    angle, contrast = find_angle(levels)
    if contrast < MIN_LINE_CONTRAST:
        return Straightened(rgb, 0.0, None, "none", False)
    ink = levels[EDGE_LEVEL]
    coarse = rotate(levels[EDGE_LEVEL + 1], -angle)
    rotation = _rotation(ink.shape, -angle)
    valid = rotate(np.ones(ink.shape, np.uint8), -angle) > 0
    edges = find_edges(rotate(ink, -angle), coarse, valid)
    perspective = edges is not None and edge_skew(edges) > PERSPECTIVE_DEG
    if abs(angle) < STRAIGHT_DEG and not perspective:
        return Straightened(rgb, float(angle), None, "none", True)
    to_small, from_small = _scale_matrices(factor << EDGE_LEVEL)
    frame: np.ndarray | None = None
    if edges is not None:
        # the chart's corners in input pixels
        frame = cv2.perspectiveTransform(
            edge_corners(edges).reshape(-1, 1, 2), from_small @ np.linalg.inv(rotation)
        ).reshape(4, 2)
    if perspective and frame is not None:
        # the quadrilateral -> a rectangle of its mean size around its centre
        width = (np.linalg.norm(frame[1] - frame[0]) + np.linalg.norm(frame[2] - frame[3])) / 2
        height = (np.linalg.norm(frame[3] - frame[0]) + np.linalg.norm(frame[2] - frame[1])) / 2
        cx, cy = frame.mean(axis=0)
        target = np.array([[cx - width / 2, cy - height / 2], [cx + width / 2, cy - height / 2],
                           [cx + width / 2, cy + height / 2], [cx - width / 2, cy + height / 2]])
        matrix = cv2.getPerspectiveTransform(frame.astype(np.float32), target.astype(np.float32))
        method = "perspective"
    else:
        matrix = from_small @ rotation @ to_small
        method = "rotation"
    size = (w, h)
    placed: np.ndarray | None = None
    if frame is not None:
        placed = cv2.perspectiveTransform(frame.reshape(-1, 1, 2), matrix).reshape(4, 2)
        layout = training_layout(placed, size, keep_aspect=method == "rotation")
        if layout is not None:
            move, size = layout
            matrix = move @ matrix
            placed = cv2.perspectiveTransform(placed.reshape(-1, 1, 2), move).reshape(4, 2)
    if method == "rotation" and np.allclose(matrix[2], (0.0, 0.0, 1.0)):
        page = cv2.warpAffine(rgb, matrix[:2], size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=_WHITE)
    else:
        page = cv2.warpPerspective(rgb, matrix, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=_WHITE)
    if placed is not None:
        _whiten_outside(page, placed, margin=float(factor << EDGE_LEVEL))
    return Straightened(page, float(angle), matrix, method, True)


#: The training pages' size and chart frame (x0, y0, x1, y1), px: where a chart that
#: was found is put when it lies elsewhere on the picture (:func:`training_layout`).
TRAINING_PAGE = (1600, 1137)
TRAINING_FRAME = (49.0, 204.0, 1575.0, 1098.0)
#: A chart whose frame is within this share of the page of the training frame's place
#: is left where it is.
LAYOUT_TOLERANCE = 0.02


def training_layout(
    frame: np.ndarray, size: tuple[int, int], *, keep_aspect: bool = True
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Where to move a straightened chart (its frame's corners ``frame`` on a page of
    ``size`` (w, h)) so that it sits as on the training pages: a 3x3 scale and shift and
    the new page size, or None when it already does.

    The new page has the training pages' proportions and is as large as keeps the
    chart at its own resolution (its frame as wide as the training frame is, relative
    to the page); the chart keeps its aspect ratio, centred in the training frame's place,
    or with ``keep_aspect`` False (a perspective undone: the rectangle's proportions are
    only an estimate) fills that place.  A photographed chart that filled part of the
    picture fills the page as the detector's training pages do."""
    w, h = size
    x0, y0 = frame.min(axis=0)
    x1, y1 = frame.max(axis=0)
    page_w, page_h = TRAINING_PAGE
    tx0, ty0, tx1, ty1 = TRAINING_FRAME
    where = np.array([x0 / w, y0 / h, x1 / w, y1 / h])
    wanted = np.array([tx0 / page_w, ty0 / page_h, tx1 / page_w, ty1 / page_h])
    if abs(w / h - page_w / page_h) < LAYOUT_TOLERANCE and (
            np.abs(where - wanted).max() < LAYOUT_TOLERANCE):
        return None
    chart_w, chart_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    out_w = chart_w * page_w / (tx1 - tx0)
    unit = out_w / page_w  # new px per training px
    out_h = page_h * unit
    scale_x, scale_y = 1.0, (ty1 - ty0) * unit / chart_h
    if keep_aspect:  # a chart taller than the training one is shrunk to fit
        scale_x = scale_y = min(1.0, scale_y)
    cx, cy = (tx0 + tx1) / 2 * unit, (ty0 + ty1) / 2 * unit
    move = np.array([[scale_x, 0.0, cx - scale_x * (x0 + x1) / 2],
                     [0.0, scale_y, cy - scale_y * (y0 + y1) / 2],
                     [0.0, 0.0, 1.0]])
    return move, (max(1, round(out_w)), max(1, round(out_h)))


def _whiten_outside(page: np.ndarray, frame: np.ndarray, margin: float) -> None:
    """Paint white what lies outside the chart frame's bounding box (plus ``margin`` px:
    one pixel of the copy the edges were found on)."""
    h, w = page.shape[:2]
    x0 = max(0, int(np.floor(frame[:, 0].min() - margin)))
    y0 = max(0, int(np.floor(frame[:, 1].min() - margin)))
    x1 = min(w, int(np.ceil(frame[:, 0].max() + margin)) + 1)
    y1 = min(h, int(np.ceil(frame[:, 1].max() + margin)) + 1)
    page[:y0] = 255
    page[y1:] = 255
    page[:, :x0] = 255
    page[:, x1:] = 255


def straighten_page(page: Page) -> tuple[Page, Straightened]:
    """``page`` (a picture: image or PDF) with its chart straightened, and what was done.

    The page itself when nothing was done; else a copy with the new image, whose
    chart frame is not known (``frame`` None, like any picture's)."""
    done = straighten(page.image)
    if done.page is page.image:
        return page, done
    return replace(page, image=done.page, frame=None), done
