"""Training augmentation that looks like what users send: photos and scans of paper ECGs.

Issue 14: the v0.1 model, trained on straight, clean pages only, called three normal
pages rotated by 7 degrees "Abnormal".  The service straightens pictures before the
detector (:mod:`ecg_dicom.pages.straighten`), and the model is trained to hold up on
what straightening leaves behind and on what it cannot undo:

* **geometry** (ultralytics' own affine step, :data:`ROBUST_GEOMETRY`): rotation up to
  ±8°, a little shear and perspective (a phone held not quite parallel), translation
  and scale (a crop, another DPI).  Never mirrored, never tiled (no mosaic): a
  mirrored ECG is not an ECG;
* **grid and ink colour** (ultralytics' HSV step): hue shifts turn the pink grid red,
  orange, green or blue; low saturation makes it grey; value gain darkens or lightens;
* **photo and scan defects** (:func:`photo_defects`, put in the place of ultralytics'
  optional Albumentations step by :func:`install`): uneven light and shadow, a colour
  cast, grey scale, blur, sensor noise, gamma and JPEG compression.  They change
  pixels only, never the box.

Only NumPy and OpenCV are used, so the GPU machine (which has no project install)
loads this file by its path.
"""

from __future__ import annotations

import random
from typing import Any

import cv2
import numpy as np

#: ultralytics' geometric and colour arguments for robust training (see the docstring).
ROBUST_GEOMETRY: dict[str, float] = {
    "degrees": 8.0,
    "shear": 2.0,
    "perspective": 0.0002,
    "translate": 0.06,
    "scale": 0.2,
    "hsv_h": 0.3,
    "hsv_s": 0.6,
    "hsv_v": 0.35,
}

#: Probability that a training page gets photo/scan defects at all.
PHOTO_P = 0.6


def _illumination(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """Multiply by a smooth light field: a linear gradient plus a soft dark blob."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    low = rng.uniform(0.55, 0.9)
    field = low + (1.0 - low) * ramp
    if rng.random() < 0.5:  # a shadow: a soft dark ellipse
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sx, sy = rng.uniform(0.15, 0.5) * w, rng.uniform(0.15, 0.5) * h
        blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        field *= 1.0 - rng.uniform(0.15, 0.4) * blob
    out = img.astype(np.float32) * field[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _cast(img: np.ndarray, rng: random.Random) -> np.ndarray:
    gains = np.array([rng.uniform(0.85, 1.1) for _ in range(3)], dtype=np.float32)
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def _gamma(img: np.ndarray, rng: random.Random) -> np.ndarray:
    g = rng.uniform(0.7, 1.4)
    table = np.clip(((np.arange(256) / 255.0) ** g) * 255.0, 0, 255).astype(np.uint8)
    return cv2.LUT(img, table)


def _grey(img: np.ndarray, rng: random.Random) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def _blur(img: np.ndarray, rng: random.Random) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.3))


def _noise(img: np.ndarray, rng: random.Random) -> np.ndarray:
    seed = rng.randrange(2**31)
    noise = np.random.default_rng(seed).normal(0.0, rng.uniform(2.0, 8.0), img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, rng: random.Random) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 85)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return img if decoded is None else np.asarray(decoded, dtype=np.uint8)


#: (defect, probability when a page gets defects), applied in this order.
DEFECTS = (
    (_illumination, 0.45),
    (_cast, 0.3),
    (_grey, 0.12),
    (_gamma, 0.3),
    (_blur, 0.35),
    (_noise, 0.3),
    (_jpeg, 0.45),
)


def photo_defects(img: np.ndarray, rng: random.Random | None = None) -> np.ndarray:
    """``img`` (BGR uint8, as ultralytics holds it) with random photo/scan defects."""
    rng = rng or random.Random()
    for defect, p in DEFECTS:
        if rng.random() < p:
            img = defect(img, rng)
    return img


def install(p: float = PHOTO_P) -> None:
    """Make ultralytics' Albumentations step apply :func:`photo_defects` with
    probability ``p`` (the training transforms only: validation never has that step).

    ultralytics calls ``Albumentations`` on every training page after its affine
    step; without the albumentations package that step does nothing, so replacing
    it changes nothing else.  Python's ``random`` is used, which ultralytics seeds
    per data-loader worker.
    """
    from ultralytics.data import augment

    def call(self: Any, labels: dict[str, Any]) -> dict[str, Any]:
        if random.random() < p and labels["img"].ndim == 3 and labels["img"].shape[2] == 3:
            labels["img"] = np.ascontiguousarray(photo_defects(labels["img"], random))  # type: ignore[arg-type]
        return labels

    augment.Albumentations.__call__ = call  # type: ignore[method-assign]
