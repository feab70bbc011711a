"""The evaluation perturbations (train.perturb) on a real page: deterministic, the
promised sizes, and a tilt that really rotates by the angle asked."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ecg_dicom.train.perturb import CONDITIONS, perspective, perturbed, photo, tilt
from realdata import ECG_IMAGES_DIR


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    path = sorted((ECG_IMAGES_DIR / "normal").glob("*.jpg"))[0]
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def ink_angle(rgb: np.ndarray) -> float:
    """The angle (degrees, counter-clockwise positive) of the smallest rectangle holding
    the chart's ink: the prepared pages are white outside the chart frame."""
    ys, xs = np.nonzero(rgb.min(axis=2) < 200)
    (_, _), (w, h), angle = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
    if w < h:  # OpenCV reports the rectangle's angle in (0, 90]: bring it to the long side
        angle -= 90
    angle = -angle  # image y points down: OpenCV's clockwise is our counter-clockwise
    return (angle + 45) % 90 - 45


@pytest.mark.parametrize("degrees", [3.0, -5.0, 7.0, 10.0])
def test_tilt_rotates_by_the_angle_and_cuts_nothing(page: np.ndarray, degrees: float) -> None:
    out = tilt(page, degrees)
    h, w = page.shape[:2]
    r = math.radians(abs(degrees))
    assert out.shape == (math.ceil(h * math.cos(r) + w * math.sin(r)),
                         math.ceil(h * math.sin(r) + w * math.cos(r)), 3)
    assert ink_angle(page) == pytest.approx(0.0, abs=0.3)
    assert ink_angle(out) == pytest.approx(degrees, abs=0.3)
    # nothing cut: the corners of the enlarged canvas are the white border
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert tuple(out[y, x]) == (255, 255, 255)
    # as much ink as before (within interpolation)
    assert (out.min(axis=2) < 128).sum() == pytest.approx((page.min(axis=2) < 128).sum(), rel=0.25)


def test_tilt_zero_is_a_copy(page: np.ndarray) -> None:
    out = tilt(page, 0)
    assert np.array_equal(out, page) and out is not page


def test_perspective_is_seeded_and_bounded(page: np.ndarray) -> None:
    a = perspective(page, 0.06, seed=1)
    assert np.array_equal(a, perspective(page, 0.06, seed=1))
    assert not np.array_equal(a, perspective(page, 0.06, seed=2))
    h, w = page.shape[:2]
    assert a.shape[0] <= h * 1.12 + 1 and a.shape[1] <= w * 1.12 + 1
    assert a.shape[0] >= h * 0.88 - 1 and a.shape[1] >= w * 0.88 - 1
    assert np.array_equal(perspective(page, 0.0, seed=1), page)
    with pytest.raises(ValueError):
        perspective(page, 0.6, seed=1)


def test_photo_is_seeded_and_looks_photographed(page: np.ndarray) -> None:
    a = photo(page, 5)
    assert a.dtype == np.uint8 and a.ndim == 3
    assert np.array_equal(a, photo(page, 5))
    assert not np.array_equal(a, photo(page, 6))
    # on a desk: the corners are not white, and the paper is no longer uniformly white
    assert a[0, 0].max() < 200
    h, w = a.shape[:2]
    paper = a[h // 2 - 40:h // 2 + 40, w // 2 - 40:w // 2 + 40]
    assert paper.mean() < 245
    assert a.shape[0] > page.shape[0] and a.shape[1] > page.shape[1]


def test_conditions_and_bad_input(page: np.ndarray) -> None:
    assert list(CONDITIONS)[:5] == ["tilt 0°", "tilt 3°", "tilt 5°", "tilt 7°", "tilt 10°"]
    assert np.array_equal(perturbed(page, "tilt 0°", 0), page)
    with pytest.raises(ValueError, match="unknown condition"):
        perturbed(page, "tilt 11°", 0)
    with pytest.raises(ValueError, match="RGB uint8"):
        tilt(page[..., 0], 3)
