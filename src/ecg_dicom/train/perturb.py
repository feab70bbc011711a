"""Deterministic page perturbations for the robustness table (``evaluate --perturb``).

Each function takes an RGB page (H x W x 3, uint8) and returns a new one; the same
arguments always give the same pixels (the seeded ones draw from
``numpy.random.default_rng(seed)``), so the robustness table can be re-made exactly.
They are **evaluation** perturbations: what a user's picture of a paper ECG does to a
page.  They are written apart from the training augmentation
(:mod:`ecg_dicom.train.augment`) and with their own parameters, so the table does not
measure the model on exactly the distortions it was trained on.

* :func:`tilt`: the page rotated by ``degrees`` (counter-clockwise for positive angles,
  as ``cv2.getRotationMatrix2D``) about its centre, on a canvas enlarged so that no
  part of the page is cut, the new corners white (paper on a white scanner lid);
* :func:`perspective`: a keystone, as a phone held not quite parallel to the paper:
  each corner moved by up to ``strength`` x the page's width (x) and height (y), drawn
  with ``seed``, the canvas the bounding box of the moved corners, white outside;
* :func:`photo`: a phone photo of the print: the page on a grey desk (a margin of
  4 % of its size), a mild tilt (up to ±3°) and keystone (strength 0.03), uneven light
  (a linear fall-off to 60-85 % plus a soft shadow), a warm colour cast (channel gains
  0.92-1.04), gaussian blur (sigma 0.6-1.2 px), sensor noise (sigma 2-5 grey levels) and
  JPEG at quality 40-60.  Every number is drawn from ``seed``.
"""

from __future__ import annotations

import cv2
import numpy as np

WHITE = (255, 255, 255)
#: The desk under a photographed page (RGB).
DESK = (118, 110, 98)

#: The conditions of the robustness table, in order: name -> (kind, argument).
CONDITIONS: dict[str, tuple[str, float]] = {
    "tilt 0°": ("tilt", 0.0),
    "tilt 3°": ("tilt", 3.0),
    "tilt 5°": ("tilt", 5.0),
    "tilt 7°": ("tilt", 7.0),
    "tilt 10°": ("tilt", 10.0),
    "perspective 0.06": ("perspective", 0.06),
    "photo": ("photo", 0.0),
}


def _check(rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"an RGB uint8 page (H x W x 3) is needed, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)


def tilt(rgb: np.ndarray, degrees: float, border: tuple[int, int, int] = WHITE) -> np.ndarray:
    """``rgb`` rotated by ``degrees`` about its centre, the canvas enlarged to hold all of
    it (see the module docstring).  0 degrees returns a copy."""
    img = _check(rgb)
    if degrees == 0:
        return img.copy()
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(degrees), 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w = int(np.ceil(h * sin + w * cos))
    new_h = int(np.ceil(h * cos + w * sin))
    matrix[0, 2] += new_w / 2.0 - w / 2.0
    matrix[1, 2] += new_h / 2.0 - h / 2.0
    return np.asarray(cv2.warpAffine(
        img, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border,
    ))


def _warp_corners(
    img: np.ndarray, moved: np.ndarray, border: tuple[int, int, int]
) -> np.ndarray:
    h, w = img.shape[:2]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    moved = moved - moved.min(axis=0)
    size = (int(np.ceil(moved[:, 0].max())), int(np.ceil(moved[:, 1].max())))
    matrix = cv2.getPerspectiveTransform(source, moved.astype(np.float32))
    return np.asarray(cv2.warpPerspective(
        img, matrix, size, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border,
    ))


def perspective(
    rgb: np.ndarray, strength: float, seed: int, border: tuple[int, int, int] = WHITE
) -> np.ndarray:
    """A keystone: each corner moved by up to ``strength`` x the page size, drawn from
    ``seed``; nothing of the page is cut (the canvas grows or shrinks to the corners)."""
    img = _check(rgb)
    if not 0 <= strength < 0.5:
        raise ValueError(f"perspective strength must be in [0, 0.5), got {strength}")
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    shift = rng.uniform(-strength, strength, size=(4, 2)) * np.array([w, h])
    return _warp_corners(img, corners + shift, border)


def photo(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A phone photo of the printed page (see the module docstring for each step)."""
    img = _check(rgb)
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    margin = (int(round(0.04 * h)), int(round(0.04 * w)))
    out = cv2.copyMakeBorder(img, margin[0], margin[0], margin[1], margin[1],
                             cv2.BORDER_CONSTANT, value=DESK)
    out = perspective(out, 0.03, int(rng.integers(1 << 31)), border=DESK)
    out = tilt(out, float(rng.uniform(-3.0, 3.0)), border=DESK)
    hh, ww = out.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / ww + np.sin(angle) * yy / hh
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    low = rng.uniform(0.6, 0.85)
    light = low + (1.0 - low) * ramp
    cx, cy = rng.uniform(0.2, 0.8) * ww, rng.uniform(0.2, 0.8) * hh
    sx, sy = rng.uniform(0.2, 0.4) * ww, rng.uniform(0.2, 0.4) * hh
    light *= 1.0 - rng.uniform(0.1, 0.3) * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    gains = np.array([rng.uniform(0.98, 1.04), rng.uniform(0.95, 1.0), rng.uniform(0.92, 0.98)])
    pixels = out.astype(np.float32) * light[..., None] * gains.astype(np.float32)
    pixels = cv2.GaussianBlur(pixels, (0, 0), float(rng.uniform(0.6, 1.2)))
    pixels += rng.normal(0.0, rng.uniform(2.0, 5.0), size=pixels.shape).astype(np.float32)
    page = np.clip(pixels, 0, 255).astype(np.uint8)
    quality = int(rng.integers(40, 61))
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(page, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("JPEG round trip failed")
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))


def perturbed(rgb: np.ndarray, condition: str, seed: int) -> np.ndarray:
    """``rgb`` under one of :data:`CONDITIONS` (``seed``: for perspective and photo)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}: one of {', '.join(CONDITIONS)}")
    kind, value = CONDITIONS[condition]
    if kind == "tilt":
        return tilt(rgb, value)
    if kind == "perspective":
        return perspective(rgb, value, seed)
    return photo(rgb, seed)
