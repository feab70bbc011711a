"""The ink map of a picture of a paper ECG and the tilt of its lines (for :mod:`.straighten`
and :mod:`.chart_check`).

Steps 1 and 2 of :func:`ecg_dicom.pages.straighten.straighten`: the darkest channel
relative to the local paper brightness (0 = paper, 1 = black; nothing counts where the
"paper" is less than :data:`PAPER_SHARE` as bright as the brightest), and the
projection-profile search for the angle that makes grid lines, frame edges and trace
baselines axis-aligned (:func:`find_angle`, coarse to fine over :data:`SEARCH_PLAN`).
"""

from __future__ import annotations

import cv2
import numpy as np

#: The long side of the copy the geometry is found on, px.
WORK_SIZE = 800


#: Tilts searched, degrees either way.
MAX_ANGLE_DEG = 20.0


#: Profile sharpness at the best angle over the sharpness 45 degrees away, below which
#: no chart lines were found: real pages, tilted, blurred, without grid, measure 22 or
#: more; photographs of other things (even of rectangles) 1-6.
MIN_LINE_CONTRAST = 10.0


#: Where the local paper brightness is below this share of the brightest paper's, the
#: picture shows something else (a table, a dark border): no ink counted there.
PAPER_SHARE = 0.5



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
    paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, square_kernel(k)).astype(np.float32)
    ink = np.clip(1.0 - grey.astype(np.float32) / np.maximum(paper, 16.0), 0.0, 1.0)
    # what is much darker than the brightest paper is not paper (a table, a dark border)
    ink[paper < PAPER_SHARE * float(np.percentile(paper[::4, ::4], 99))] = 0.0
    return ink



def square_kernel(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))



def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """``image`` rotated by ``angle`` degrees (counter-clockwise) about its centre, same size."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)



def line_sharpness(ink: np.ndarray, angle: float) -> float:
    """How sharp the row and column profiles are once ``ink`` is rotated by ``-angle``."""
    upright = rotate(ink, -angle)
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
