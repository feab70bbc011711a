"""The chart's four edges on an upright ink map (step 3 of
:func:`ecg_dicom.pages.straighten.straighten`: perspective).

The chart is the largest blob of ink and grid once closed (:func:`chart_region`); a
line is fitted to each of its four edges (:func:`find_edges`: a vote over slopes and
offsets, then least squares), leaving out points where the picture itself ends.
"""

from __future__ import annotations

import cv2
import numpy as np

from ecg_dicom.pages.ink import square_kernel

#: Darkness (0..1 relative to the paper) that counts as ink for the chart region.
REGION_INK = 0.08


#: Mean darkness (over the closing window) that counts as grid for the chart region.
REGION_GRID = 0.025


#: The chart region must cover at least this share of the picture.
MIN_CHART_SHARE = 0.12


#: An edge is the chart's when at least this share of its points lie on one line.
MIN_EDGE_SHARE = 0.6


#: The level the chart's edges are found on (its blob is chosen one level up).
EDGE_LEVEL = 0


#: How far outside an edge point (px at EDGE_LEVEL) the picture must still have pixels
#: for the point to be the chart's edge and not the picture's.
_EDGE_CLEARANCE = 3


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
    return cv2.morphologyEx(ink_or_grid.astype(np.uint8), cv2.MORPH_CLOSE, square_kernel(k))



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
    near = cv2.resize(cv2.dilate(seed, square_kernel(2 * grow + 1)), (w, h),
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
