"""pages.straighten: real training pages tilted and warped by known amounts come back
upright (issue 14, "Robust input"); straight pages and rendered waveform pages are
returned untouched.

The pages are the real Mendeley print-outs (../shared/data/ecg-images); every
distortion is made here with OpenCV from known parameters, so the expected answer
is exact: the tilt put in, and the chart frame where it was before.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ecg_dicom.config import Settings
from ecg_dicom.pages.render import render_page
from ecg_dicom.pages.straighten import TRAINING_FRAME, TRAINING_PAGE, straighten
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.train.dataset import find_chart_frame
from realdata import ECG_IMAGES_DIR
from stand_ins import StandInDetector
from variants import REAL_GEOMETRY, read_real

PAGES = sorted(ECG_IMAGES_DIR.glob("*/*.jpg"))
#: A spread of pages over the four classes (every 37th of the sorted list).
SAMPLE = PAGES[::37]
WHITE = (255, 255, 255)


def load(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return np.ascontiguousarray(bgr[:, :, ::-1])


@pytest.fixture(scope="module")
def sample() -> list[np.ndarray]:
    assert len(PAGES) == 371, f"expected the 371 training pages under {ECG_IMAGES_DIR}"
    return [load(p) for p in SAMPLE]


def tilted(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """``rgb`` rotated counter-clockwise by ``degrees`` about its centre, same canvas,
    white where the page has no pixels (a crooked scan)."""
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=WHITE)


#: The white margin put around a page before it is keystoned, px.
MARGIN = 160


def keystoned(rgb: np.ndarray, top: float, left: float, degrees: float = 0.0) -> np.ndarray:
    """A phone held not parallel to the page: the page (on a white margin of
    :data:`MARGIN` px, so that the chart is smaller in the picture than on a training
    page) with its top edge shortened by ``top`` x the width at each end and its left
    edge by ``left`` x the height at each end, then tilted by ``degrees``."""
    padded = cv2.copyMakeBorder(rgb, MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_CONSTANT,
                                value=WHITE)
    h, w = padded.shape[:2]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    moved = np.array([[top * w, left * h], [w - top * w, 0], [w, h], [0, h - left * h]],
                     dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(source, moved)
    if degrees:
        rotation = np.vstack([cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0), [0, 0, 1]])
        matrix = rotation @ matrix
    return cv2.warpPerspective(padded, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=WHITE)


def pink_edges(rgb: np.ndarray) -> tuple[float, float, float, float]:
    """How far each side of the pink chart frame is from axis-aligned: its rise (px)
    from one end to the other, for the top, bottom, left and right sides.

    The frame is found by colour only (red well above green), not by anything
    straighten uses; each side is the first pink pixel seen from outside, over the
    middle three quarters of the side, those within 15 px of the side's median
    (a corner cut off by the picture's border has no frame line), fitted with a line."""
    pink = (rgb[..., 0].astype(np.int16) - rgb[..., 1]) > 25
    ys, xs = np.nonzero(pink)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()

    def rise(mask: np.ndarray) -> float:
        # mask: rows = positions along the side, columns = depth from outside
        along = np.arange(mask.shape[0])
        lo, hi = mask.shape[0] // 8, mask.shape[0] - mask.shape[0] // 8
        depth = np.argmax(mask[lo:hi], axis=1).astype(float)
        hit = mask[lo:hi].any(axis=1)
        near = hit & (np.abs(depth - np.median(depth[hit])) <= 15)
        assert near.sum() > (hi - lo) // 3, "a side of the frame is missing"
        slope = np.polyfit(along[lo:hi][near], depth[near], 1)[0]
        return float(slope * mask.shape[0])

    frame = pink[y0:y1 + 1, x0:x1 + 1]
    return (rise(frame.T), rise(frame[::-1].T), rise(frame), rise(frame[:, ::-1]))


def assert_training_layout(rgb: np.ndarray) -> None:
    """The page has the training pages' proportions and its chart frame is where theirs
    is (within 0.5 % of the page's width)."""
    h, w = rgb.shape[:2]
    assert abs(w / h - TRAINING_PAGE[0] / TRAINING_PAGE[1]) < 0.01, (w, h)
    wanted = np.array(TRAINING_FRAME) * w / TRAINING_PAGE[0]
    found = np.array(find_chart_frame(rgb))
    assert np.abs(found - wanted).max() <= 0.005 * w, (found, wanted)


@pytest.mark.parametrize("degrees", [3.0, -3.0, 5.0, -5.0, 7.0, -7.0, 10.0, -10.0, 15.0, -15.0])
def test_a_tilt_is_found_within_half_a_degree_and_undone(
    degrees: float, sample: list[np.ndarray]
) -> None:
    for page in sample:
        done = straighten(tilted(page, degrees))
        assert done.found and done.method == "rotation"
        assert abs(done.angle_deg - degrees) < 0.5, done.angle_deg
        assert done.homography is not None and done.homography.shape == (3, 3)
        # the chart frame is back where it was on the straight page
        before, after = np.array(find_chart_frame(page)), np.array(find_chart_frame(done.page))
        assert np.abs(after - before).max() <= 3, (before, after)
        assert max(abs(v) for v in pink_edges(done.page)) <= 3.0


@pytest.mark.parametrize(("top", "left", "degrees"), [
    (0.03, 0.0, 0.0), (0.05, 0.0, 0.0), (0.0, 0.03, 0.0), (0.03, 0.02, 4.0), (0.04, 0.0, -6.0),
])
def test_a_perspective_is_undone(
    top: float, left: float, degrees: float, sample: list[np.ndarray]
) -> None:
    for page in sample[::2]:
        warped = keystoned(page, top, left, degrees)
        if not degrees:
            assert max(abs(v) for v in pink_edges(warped)) > 8  # visibly not a rectangle
        done = straighten(warped)
        assert done.method == "perspective", done.describe()
        if not left:  # (a shortened left edge tilts the top and bottom edges too)
            assert abs(done.angle_deg - degrees) < 0.5
        # the frame's edges are horizontal and vertical again: within 3 px end to end
        assert max(abs(v) for v in pink_edges(done.page)) <= 3.0, pink_edges(done.page)
        # ... and the chart sits where it sits on the training pages (the picture's white
        # margin gone): within 0.5 % of the page
        assert_training_layout(done.page)
        # white outside the chart (the picture's white margin and the page's own), as on
        # the training pages
        x0, y0, x1, y1 = find_chart_frame(done.page)
        assert (done.page[: y0 - 20] == 255).all() and (done.page[y1 + 20:] == 255).all()
        assert (done.page[:, : x0 - 20] == 255).all() and (done.page[:, x1 + 20:] == 255).all()


def green_grid(rgb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 60) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def grey_page(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def red_grid(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    light = rgb.min(axis=2)
    out[(light > 150) & (light < 250)] = (235, 110, 110)
    return out


def no_grid(rgb: np.ndarray) -> np.ndarray:
    """Only the traces (the grid and the pink frame removed)."""
    out = rgb.copy()
    out[rgb.min(axis=2) > 150] = 255
    return out


def jpeg(rgb: np.ndarray, quality: int = 30) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    assert ok and decoded is not None
    return np.asarray(decoded)


def blurred(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), 1.5)


def shadowed(rgb: np.ndarray) -> np.ndarray:
    """Uneven light: bright on the right, 45 % on the left, plus sensor noise."""
    h, w = rgb.shape[:2]
    light = np.linspace(0.45, 1.0, w, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(0).normal(0, 4, rgb.shape)
    return np.clip(rgb * light + noise, 0, 255).astype(np.uint8)


def half_size(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)


def double_size(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (rgb.shape[1] * 2, rgb.shape[0] * 2), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("variant", [
    green_grid, grey_page, red_grid, no_grid, jpeg, blurred, shadowed, half_size, double_size,
])
def test_other_grids_and_picture_qualities_still_straighten(
    variant: object, sample: list[np.ndarray]
) -> None:
    for page in sample[::3]:
        for degrees in (-7.0, 10.0):
            picture = variant(tilted(page, degrees))  # type: ignore[operator]
            done = straighten(picture)
            assert done.found and done.method in ("rotation", "perspective")
            assert abs(done.angle_deg - degrees) < 0.5, (variant, degrees, done.angle_deg)
        straight = variant(page)  # type: ignore[operator]
        assert straighten(straight).page is straight


def test_a_photographed_page_on_a_desk_is_found_and_cut_out(sample: list[np.ndarray]) -> None:
    """The page smaller than the picture, on a dark desk, keystoned and tilted: the
    chart comes out upright and the desk is gone (white)."""
    page = sample[1]
    h, w = page.shape[:2]
    big_h, big_w = int(h * 1.3), int(w * 1.3)
    desk = np.full((big_h, big_w, 3), (90, 80, 70), np.uint8)
    ox, oy = (big_w - w) / 2, (big_h - h) / 2
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    moved = np.array([[ox + 0.03 * w, oy], [ox + 0.97 * w, oy], [ox + w, oy + h], [ox, oy + h]],
                     dtype=np.float32)
    rotation = np.vstack([cv2.getRotationMatrix2D((big_w / 2, big_h / 2), 5.0, 1.0), [0, 0, 1]])
    matrix = rotation @ cv2.getPerspectiveTransform(source, moved)
    photo = cv2.warpPerspective(page, matrix, (big_w, big_h), borderMode=cv2.BORDER_TRANSPARENT,
                                dst=desk.copy())
    done = straighten(blurred(photo))
    assert done.method == "perspective" and abs(done.angle_deg - 5.0) < 0.5
    assert max(abs(v) for v in pink_edges(done.page)) <= 4.0
    assert_training_layout(done.page)
    assert (done.page.reshape(-1, 3) == (90, 80, 70)).all(axis=1).mean() < 0.01  # desk whited out


def test_every_training_page_is_returned_unchanged() -> None:
    """The 371 pages the model learnt from are straight: the same array comes back, so
    the model's accuracy on them cannot move."""
    assert len(PAGES) == 371
    for path in PAGES:
        page = load(path)
        done = straighten(page)
        assert done.page is page, (path.name, done.describe())
        assert done.method == "none" and done.homography is None and done.found
        assert abs(done.angle_deg) < 0.2


@pytest.mark.parametrize("name", sorted(REAL_GEOMETRY))
def test_rendered_waveform_pages_are_returned_unchanged(name: str) -> None:
    image = render_page(load_waveform(read_real(name))).image
    done = straighten(image)
    assert done.page is image and done.method == "none"


def test_a_picture_without_lines_is_left_alone() -> None:
    """No grid, frame or traces: nothing is found and nothing is done."""
    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (600, 900, 3)).astype(np.uint8), (0, 0), 25)
    picture = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX)
    done = straighten(picture)
    assert done.page is picture and done.method == "none" and not done.found


def test_the_pipeline_straightens_a_tilted_picture_before_the_detector(
    tmp_path: Path, sample: list[np.ndarray]
) -> None:
    """read_file (classify, /api/classify, evaluate): the detector sees the upright page,
    which is also the page the results are drawn on, and the Reading says what was done."""
    path = tmp_path / "tilted.png"
    cv2.imwrite(str(path), tilted(sample[0], 7.0)[:, :, ::-1])
    detector = StandInDetector("Normal-ECG")
    pipeline = Pipeline(Settings(limits={"isolate": False}), detector=detector)  # type: ignore[arg-type]
    reading = pipeline.read_file(path)
    assert detector.calls == 1 and reading.result.label == "Normal"
    assert reading.straightening.startswith("rotation +7.0") or reading.straightening.startswith(
        "rotation +6.9"), reading.straightening
    assert max(abs(v) for v in pink_edges(reading.page.image)) <= 3.0
    straight = tmp_path / "straight.png"
    cv2.imwrite(str(straight), sample[0][:, :, ::-1])
    assert pipeline.read_file(straight).straightening == "none"


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 500), (500, 5), (64, 64), (3000, 20)])
def test_odd_pictures_come_back_unchanged(shape: tuple[int, int]) -> None:
    """Tiny, thin, blank, black or noisy pictures: no error, nothing done (the chart check
    then says why they are not an ECG)."""
    rng = np.random.default_rng(sum(shape))
    for picture in (rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
                    np.zeros((*shape, 3), np.uint8), np.full((*shape, 3), 255, np.uint8)):
        done = straighten(picture)
        assert done.page is picture and done.method == "none" and not done.found
