"""A picture of a paper ECG -> the upright page the detector was trained on.

The detector learnt from scanned cart pages: upright, the chart frame axis-aligned,
white outside it.  Users send phone photos and crooked scans (issue 14), and a page
tilted by 7 degrees already changes the model's call.  :func:`straighten` finds the
chart on the picture and warps it back, once, at full size:

1. **Ink map**, on a copy shrunk by a whole factor to at most :data:`WORK_SIZE` px
   on its long side (so the cost does not depend on the picture's resolution):
   the darkest channel of each pixel (a pink, red, green or grey grid and black
   traces are all darker than the paper in one channel at least) relative to the
   local paper brightness (a closing, which removes lines and traces but keeps
   larger areas: shadows and uneven light cancel out), 0 = paper, 1 = black.
   Nothing counts where that "paper" is less than :data:`PAPER_SHARE` as bright as
   the brightest (a desk or a dark border around a photographed page).
2. **Rotation** by a projection-profile search: the ink map is rotated by each
   candidate angle, and the angle whose row and column profiles are sharpest
   (largest squared differences between neighbouring sums,
   :func:`line_sharpness`) is the one that makes grid lines, frame edges and trace
   baselines axis-aligned.  Coarse to fine (:data:`SEARCH_PLAN`): 1 degree steps
   over +-:data:`MAX_ANGLE_DEG` on the copy shrunk 4 times (200 px for a 1600 px
   page), then 0.25 and 0.05 degree steps on the copy shrunk twice, each refined by
   a parabola through the best three.  The sharpness at the best angle over the
   sharpness 45 degrees away (where every line is smeared) says whether there are
   lines at all (``found``: at least :data:`MIN_LINE_CONTRAST`).
3. **Perspective**: on the ink map made upright (shrunk twice), the chart is the
   largest blob of ink and grid once closed (:func:`chart_region`); a line is
   fitted to each of its four edges (:func:`find_edges`: a vote over slopes and
   offsets, so a corner cut off by the picture's border or a trace crossing the
   frame does not bend it), leaving out points where the picture itself ends.
   When all four edges hold (:data:`MIN_EDGE_SHARE` of their points on the line)
   and opposite edges are more than :data:`PERSPECTIVE_DEG` from parallel, the
   quadrilateral is mapped onto a rectangle of its mean width and height around
   its centre (``cv2.getPerspectiveTransform``); else the rotation alone is
   applied (``cv2.getRotationMatrix2D``).
4. One warp of the full-size picture (bilinear, white where the picture has no
   pixels); when the four edges were found, everything outside the chart's
   bounding box is painted white, as on the training pages.

A page already straight (|angle| < :data:`STRAIGHT_DEG`, no perspective) and a
picture where no chart was found come back **unchanged** (the same array,
method "none"): the training pages and rendered waveform pages are not touched.

Sign convention: ``angle_deg`` is the chart's tilt in the picture, positive
counter-clockwise as the picture is viewed (OpenCV's ``getRotationMatrix2D``
convention, y down); the page is rotated by ``-angle_deg`` to straighten it.
``homography`` maps input pixel coordinates to output ones (3x3, rotation
included), None when the page is unchanged.

Limits: tilts beyond +-:data:`MAX_ANGLE_DEG` (a page upside down or sideways) are
not searched; perspective is corrected only when all four chart edges are visible
(a cropped chart is only rotated) and edges within about 5.7 degrees of the
upright page's axes; the chart is not rescaled, so a chart photographed small
stays small on the page; a page bent or curled is not flattened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ecg_dicom.records import Page

#: The long side of the copy the geometry is found on, px.
WORK_SIZE = 800
#: Tilts searched, degrees either way.
MAX_ANGLE_DEG = 20.0
#: A picture whose brightest pixels (99th percentile of the darkest channel) stay below
#: this has no paper showing (black, or far too dark): nothing is done.
MIN_PAPER_LEVEL = 48.0
#: Below this tilt (degrees) a page counts as straight and is returned unchanged.
STRAIGHT_DEG = 0.2
#: Opposite chart edges further apart than this (degrees) mean perspective.
PERSPECTIVE_DEG = 0.4
#: Profile sharpness at the best angle over the sharpness 45 degrees away, below which
#: no chart lines were found: real pages, tilted, blurred, without grid, measure 22 or
#: more; photographs of other things (even of rectangles) 1-6.
MIN_LINE_CONTRAST = 10.0
#: Where the local paper brightness is below this share of the brightest paper's, the
#: picture shows something else (a table, a dark border): no ink counted there.
PAPER_SHARE = 0.5
#: Darkness (0..1 relative to the paper) that counts as ink for the chart region.
REGION_INK = 0.08
#: Mean darkness (over the closing window) that counts as grid for the chart region.
REGION_GRID = 0.025
#: The chart region must cover at least this share of the picture.
MIN_CHART_SHARE = 0.12
#: An edge is the chart's when at least this share of its points lie on one line.
MIN_EDGE_SHARE = 0.6

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


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` shrunk by a whole ``factor`` (area average; the last partial rows and
    columns dropped): OpenCV's fast path, and work pixel i covers input pixels
    [factor * i, factor * (i + 1))."""
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    h, w = max(factor, h - h % factor), max(factor, w - w % factor)
    return cv2.resize(image[:h, :w], (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def darkest_channel(rgb: np.ndarray) -> np.ndarray:
    """The darkest of the three channels of each pixel (uint8), or the grey image itself."""
    if rgb.ndim == 2:
        return rgb
    r, g, b = cv2.split(np.ascontiguousarray(rgb[..., :3]))
    return cv2.min(cv2.min(r, g), b)


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Darkness of a darkest-channel image relative to the local paper brightness,
    float32 in 0..1 (module docstring)."""
    k = max(3, (max(grey.shape) // 50) | 1)
    paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, _square(k)).astype(np.float32)
    ink = np.clip(1.0 - grey.astype(np.float32) / np.maximum(paper, 16.0), 0.0, 1.0)
    # what is much darker than the brightest paper is not paper (a table, a dark border)
    ink[paper < PAPER_SHARE * float(np.percentile(paper[::4, ::4], 99))] = 0.0
    return ink


def _square(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))


def _rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """``image`` rotated by ``angle`` degrees (counter-clockwise) about its centre, same size."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def line_sharpness(ink: np.ndarray, angle: float) -> float:
    """How sharp the row and column profiles are once ``ink`` is rotated by ``-angle``."""
    upright = _rotate(ink, -angle)
    depth = cv2.CV_32S if upright.dtype == np.uint8 else cv2.CV_32F
    rows = cv2.reduce(upright, 1, cv2.REDUCE_SUM, dtype=depth).ravel().astype(np.float64)
    cols = cv2.reduce(upright, 0, cv2.REDUCE_SUM, dtype=depth).ravel().astype(np.float64)
    return float(np.square(np.diff(rows)).sum() + np.square(np.diff(cols)).sum())


def _search(ink: np.ndarray, centre: float, half: float, step: float) -> tuple[float, float]:
    """The best angle (and its score) in ``centre +- half`` by ``step``, refined by a parabola."""
    angles = centre + np.arange(-half, half + step / 2, step)
    scores = np.array([line_sharpness(ink, float(a)) for a in angles])
    i = int(np.argmax(scores))
    best = float(angles[i])
    if 0 < i < len(angles) - 1:
        s0, s1, s2 = scores[i - 1], scores[i], scores[i + 1]
        denom = s0 - 2 * s1 + s2
        if denom < 0:
            best += float(0.5 * (s0 - s2) / denom) * step
    return best, float(scores[i])


#: The angle search, coarse to fine: (level, half range, step), degrees; level k is
#: the work copy shrunk 2**k times (200 and 400 px for a 1600 px page).
SEARCH_PLAN: tuple[tuple[int, float, float], ...] = (
    (2, MAX_ANGLE_DEG, 1.0), (1, 1.0, 0.25), (1, 0.15, 0.05),
)
#: The level the chart's edges are found on (its blob is chosen one level up).
EDGE_LEVEL = 0
#: How far outside an edge point (px at EDGE_LEVEL) the picture must still have pixels
#: for the point to be the chart's edge and not the picture's.
_EDGE_CLEARANCE = 3


def ink_levels(ink: np.ndarray) -> list[np.ndarray]:
    """The ink map and its copies shrunk 2, 4, ... times, as far as :data:`SEARCH_PLAN`
    and :func:`~ecg_dicom.pages.chart_check.measure_chart` need (level 2 at least)."""
    levels = [ink]
    for _ in range(max(2, *(level for level, _, _ in SEARCH_PLAN))):
        levels.append(shrink(levels[-1], 2))
    return levels


def find_angle(levels: list[np.ndarray]) -> tuple[float, float]:
    """(tilt in degrees, line contrast) from :func:`ink_levels` (module docstring)."""
    angle, contrast = 0.0, 0.0
    # 8-bit copies: rotated and summed faster than floats, and precise enough
    quantised = {level: cv2.convertScaleAbs(levels[level], alpha=255.0)
                 for level in {level for level, _, _ in SEARCH_PLAN}}
    for i, (level, half, step) in enumerate(SEARCH_PLAN):
        angle, best = _search(quantised[level], angle, half, step)
        if i == 0:
            smeared = line_sharpness(quantised[level], angle + 45.0)
            contrast = best / smeared if smeared > 0 else 0.0
            angle = float(round(angle / step) * step)
    return angle, contrast


Edge = tuple[float, float, float]  # slope, intercept, share of the points on the line


#: Slopes an edge may have once the page is upright (perspective), and the fit's tolerance, px.
_SLOPES = np.linspace(-0.1, 0.1, 101)
_EDGE_TOLERANCE = 1.5


def _fit_edge(along: np.ndarray, across: np.ndarray) -> Edge | None:
    """The line ``across = a * along + b`` that most edge points lie on (a vote over
    slopes within +-0.1 and 1 px intercept bins, then least squares on the points
    within :data:`_EDGE_TOLERANCE`): a chart edge partly cut off by the picture's own
    border, or crossed by a trace, keeps its line.  (a, b, share of points on it)."""
    if along.size < 10:
        return None
    intercepts = np.rint(across[None, :] - _SLOPES[:, None] * along[None, :]).astype(np.int64)
    low = int(intercepts.min())
    bins = int(intercepts.max()) - low + 1
    cells = (intercepts - low) + np.arange(_SLOPES.size)[:, None] * bins
    votes = np.bincount(cells.ravel(), minlength=_SLOPES.size * bins)
    i, j = divmod(int(np.argmax(votes)), bins)
    a, b = float(_SLOPES[i]), float(j + low)
    for _ in range(2):
        keep = np.abs(across - (a * along + b)) <= _EDGE_TOLERANCE
        if keep.sum() < 10:
            return None
        a, b = (float(v) for v in np.polyfit(along[keep], across[keep], 1))
    keep = np.abs(across - (a * along + b)) <= _EDGE_TOLERANCE
    return a, b, float(keep.mean())


def _region_mask(ink: np.ndarray) -> np.ndarray:
    """Ink (lines, traces) or a faint grid's mean darkness, closed (uint8 0/1)."""
    k = max(3, (max(ink.shape) // 50) | 1)
    # the grid's mean over a small window (a third of the closing): a wider one would
    # spread the chart's outline beyond its frame
    b = max(3, (k // 3) | 1)
    ink_or_grid = (ink > REGION_INK) | (cv2.blur(ink, (b, b)) > REGION_GRID)
    return cv2.morphologyEx(ink_or_grid.astype(np.uint8), cv2.MORPH_CLOSE, _square(k))


def chart_region(ink: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The chart's region (bool) on an upright ink map and its bounding box
    (x0, y0, x1, y1, exclusive ends), or None when no region covers
    :data:`MIN_CHART_SHARE` of the map: ink (lines, traces) or a faint grid's mean
    darkness, closed into one blob, the largest one."""
    mask = _region_mask(ink)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[largest, :4])
    if w * h < MIN_CHART_SHARE * mask.size:
        return None
    region = np.asarray(labels[y:y + h, x:x + w] == largest)
    return region, (x, y, x + w, y + h)


def _fine_region(
    ink: np.ndarray, coarse: np.ndarray
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """:func:`chart_region` of ``ink``, the blob chosen on ``coarse`` (``ink`` shrunk
    twice, cheaper to label) and its outline taken from ``ink`` (twice as precise)."""
    found = chart_region(coarse)
    if found is None:
        return None
    blob, (x0, y0, x1, y1) = found
    h, w = ink.shape
    grow = 3  # coarse px: the fine outline may lie this far outside the coarse one
    seed: np.ndarray = np.zeros(coarse.shape, np.uint8)
    seed[y0:y1, x0:x1] = blob
    near = cv2.resize(cv2.dilate(seed, _square(2 * grow + 1)), (w, h),
                      interpolation=cv2.INTER_NEAREST)
    region = (_region_mask(ink) > 0) & (near > 0)
    x0, y0 = max(0, 2 * (x0 - grow)), max(0, 2 * (y0 - grow))
    x1, y1 = min(w, 2 * (x1 + grow)), min(h, 2 * (y1 + grow))
    return region[y0:y1, x0:x1], (x0, y0, x1, y1)


def _first(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first True along ``axis`` for each line across it, and which lines have one."""
    return np.argmax(mask, axis=axis), np.asarray(mask.any(axis=axis))


def find_edges(ink: np.ndarray, coarse: np.ndarray, valid: np.ndarray) -> list[Edge] | None:
    """Lines fitted to the top, bottom, left and right edges of the chart region of an
    upright ink map (``coarse``: the same shrunk twice; top/bottom: y = a x + b;
    left/right: x = a y + b), over the middle 80 % of each edge; points where the
    picture itself ends (``valid`` False just outside) are not the chart's edge and
    are left out.  None when an edge cannot be fitted (cropped, or no region)."""
    found = _fine_region(ink, coarse)
    if found is None:
        return None
    region, (x0, y0, x1, y1) = found
    h, w = region.shape
    if w < 20 or h < 20:
        return None
    c0, c1, r0, r1 = w // 10, w - w // 10, h // 10, h - h // 10
    cols = np.arange(c0, c1)
    rows = np.arange(r0, r1)
    top, has_top = _first(region[:, c0:c1], 0)
    bottom, has_bottom = _first(region[::-1, c0:c1], 0)
    left, has_left = _first(region[r0:r1, :], 1)
    right, has_right = _first(region[r0:r1, ::-1], 1)
    top = top + y0
    bottom = y0 + h - 1 - bottom
    left = left + x0
    right = x0 + w - 1 - right
    gap = _EDGE_CLEARANCE
    vh, vw = valid.shape

    def clear(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        inside = (ys >= 0) & (ys < vh) & (xs >= 0) & (xs < vw)
        ok = np.zeros(ys.shape, dtype=bool)
        ok[inside] = valid[ys[inside], xs[inside]]
        return ok

    xs, ys = cols + x0, rows + y0
    points = [
        (xs, top, has_top & clear(top - gap, xs)),
        (xs, bottom, has_bottom & clear(bottom + gap, xs)),
        (ys, left, has_left & clear(ys, left - gap)),
        (ys, right, has_right & clear(ys, right + gap)),
    ]
    edges = []
    for along, across, use in points:
        if use.sum() < along.size // 2:
            return None
        fit = _fit_edge(along[use].astype(np.float64), across[use].astype(np.float64))
        if fit is None or fit[2] < MIN_EDGE_SHARE:
            return None
        edges.append(fit)
    return edges


def edge_corners(edges: list[Edge]) -> np.ndarray:
    """TL, TR, BR, BL corners where the edge lines of :func:`find_edges` meet."""
    (at, bt, _), (ab, bb, _), (al, bl, _), (ar, br, _) = edges

    def meet(a_h: float, b_h: float, a_v: float, b_v: float) -> tuple[float, float]:
        # y = a_h x + b_h and x = a_v y + b_v
        y = (a_h * b_v + b_h) / (1.0 - a_h * a_v)
        return a_v * y + b_v, y

    return np.array([meet(at, bt, al, bl), meet(at, bt, ar, br),
                     meet(ab, bb, ar, br), meet(ab, bb, al, bl)], dtype=np.float64)


def edge_skew(edges: list[Edge]) -> float:
    """How far from parallel opposite edges are, degrees (the larger pair)."""
    (at, _, _), (ab, _, _), (al, _, _), (ar, _, _) = edges
    return float(np.degrees(max(abs(np.arctan(at) - np.arctan(ab)),
                                abs(np.arctan(al) - np.arctan(ar)))))


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
    coarse = _rotate(levels[EDGE_LEVEL + 1], -angle)
    rotation = _rotation(ink.shape, -angle)
    valid = _rotate(np.ones(ink.shape, np.uint8), -angle) > 0
    edges = find_edges(_rotate(ink, -angle), coarse, valid)
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
