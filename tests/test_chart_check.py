"""pages.chart_check: a picture that is not a readable 12-lead ECG page is "Not
interpretable" with the reason (issue 14, "Not interpretable is an answer"); every
real 12-lead page, and every 12-lead page the renderer draws, is readable.

Real pages: the 371 Mendeley print-outs (../shared/data/ecg-images) and the real
DICOM ECGs rendered by the project's renderer.  Pictures that are not ECGs are
made here (no downloads): a photo-like scene of gradients, shapes and grain.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ecg_dicom.config import Settings
from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.model.synthetic import int8_calibration_pages
from ecg_dicom.pages.blank import blank_page
from ecg_dicom.pages.chart_check import chart_problem, check_chart
from ecg_dicom.pages.render import empty_paper, finished_page, render_page
from ecg_dicom.pages.straighten import straighten
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.records import Page
from stand_ins import StandInDetector
from test_straighten import PAGES, WHITE, load
from variants import REAL_GEOMETRY, ambulatory_ecg, read_real


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    return load(PAGES[0])


def scene(seed: int, h: int = 1137, w: int = 1600) -> np.ndarray:
    """A photo-like picture that is not an ECG: a sky-to-ground gradient, soft colour
    blobs, a dozen solid discs and rectangles, sensor grain."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, h)[:, None, None]
    img = (1 - y) * np.array([200.0, 220.0, 250.0]) + y * np.array([70.0, 110.0, 60.0])
    img = np.broadcast_to(img, (h, w, 3)).copy()
    blobs = cv2.GaussianBlur(rng.uniform(-60, 60, (h // 20, w // 20, 3)).astype(np.float32),
                             (0, 0), 2)
    img += cv2.resize(blobs, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        x0, y0 = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        if rng.uniform() < 0.5:
            cv2.circle(img, (x0, y0), int(rng.uniform(30, 200)), colour, -1)
        else:
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.uniform(50, 400)),
                                          y0 + int(rng.uniform(50, 300))), colour, -1)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_a_picture_that_is_not_an_ecg_is_not_interpretable(seed: int) -> None:
    picture = straighten(scene(seed)).page
    reason = chart_problem(picture)
    assert reason is not None and "does not look like a paper ECG" in reason, reason


def test_smooth_noise_is_not_an_ecg() -> None:
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (900, 1200, 3)).astype(np.uint8), (0, 0), 25)
    reason = chart_problem(cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX))
    assert reason is not None and "does not look like a paper ECG" in reason


def test_a_blank_grid_is_not_interpretable(page: np.ndarray) -> None:
    # the renderer's own paper: grid and frame, no trace
    paper = finished_page(empty_paper(), ()).image
    assert "holds no traces" in (chart_problem(paper) or ""), chart_problem(paper)
    # a real print-out with its trace ink removed (dark in every channel -> paper white)
    erased = page.copy()
    erased[page.max(axis=2) < 170] = 255
    assert "no traces" in (chart_problem(erased) or ""), chart_problem(erased)
    # the page the service itself draws for a not-interpretable waveform
    reason = chart_problem(blank_page(("Name: Test",), "the recording is flat").image)
    assert reason is not None


def test_a_two_lead_strip_is_not_interpretable(page: np.ndarray) -> None:
    # a 2-lead Holter recording (II and V5) drawn by the project's renderer
    strip = render_page(load_waveform(ambulatory_ecg(60))).image
    reason = chart_problem(strip)
    assert reason is not None and "2 row(s) of traces" in reason, reason
    # two rows of traces cut out of a real print-out (its first two rows, frame to frame)
    rows = np.full_like(page, 255)
    rows[200:620] = page[200:620]
    rows[600:625, 40:1580] = page[1085:1110, 40:1580]  # the frame's bottom edge under them
    reason = chart_problem(rows)
    assert reason is not None and "row(s) of traces" in reason, reason


def test_too_dark_or_too_blurred_is_not_interpretable(page: np.ndarray) -> None:
    dark = (page.astype(np.float32) * 0.3).astype(np.uint8)
    assert "too dark" in (chart_problem(dark) or "")
    for sigma in (5.0, 8.0):
        blurred = cv2.GaussianBlur(page, (0, 0), sigma)
        reason = chart_problem(blurred)
        assert reason is not None, sigma


def test_every_real_page_is_readable() -> None:
    """The 371 pages the model learnt from: none is turned away."""
    assert len(PAGES) == 371
    problems = {p.name: chart_problem(load(p)) for p in PAGES}
    assert {k: v for k, v in problems.items() if v is not None} == {}


@pytest.mark.parametrize("name", sorted(REAL_GEOMETRY))
def test_rendered_twelve_lead_pages_are_readable(name: str) -> None:
    assert chart_problem(render_page(load_waveform(read_real(name))).image) is None


def test_synthetic_rendered_pages_are_readable() -> None:
    for image in int8_calibration_pages(4, seed=11):
        assert chart_problem(image) is None


def tilted(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (w, h), borderValue=WHITE)


def test_photographed_and_recoloured_pages_stay_readable_once_straightened() -> None:
    """What a user sends (tilted, JPEG, uneven light, mild blur, another grid colour)
    is still a readable 12-lead page once straightened."""
    rng = np.random.default_rng(1)
    for path in PAGES[::60]:
        page = load(path)
        hsv = cv2.cvtColor(page, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 60) % 180
        green = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        light = np.linspace(0.55, 1.0, page.shape[1], dtype=np.float32)[None, :, None]
        shaded = np.clip(page * light + rng.normal(0, 4, page.shape), 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", cv2.GaussianBlur(tilted(shaded, 6.0), (0, 0), 1.0),
                                [cv2.IMWRITE_JPEG_QUALITY, 40])
        assert ok
        photo = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        assert photo is not None
        for picture in (green, photo, tilted(page, -9.0)):
            assert chart_problem(straighten(picture).page) is None


def test_check_chart_raises_not_interpretable_with_the_page() -> None:
    strip = Page(render_page(load_waveform(ambulatory_ecg(60))).image, source_kind="image")
    with pytest.raises(NotInterpretableError) as caught:
        check_chart(strip)
    assert caught.value.page is strip and "2 row(s)" in caught.value.reason


def test_the_pipeline_answers_not_interpretable_for_a_two_lead_picture(tmp_path: Path) -> None:
    """read_file on a picture of a 2-lead strip: "Not interpretable" with the reason,
    the detector never asked (its boxes would be a guess)."""
    path = tmp_path / "holter.png"
    strip = render_page(load_waveform(ambulatory_ecg(60))).image
    cv2.imwrite(str(path), strip[:, :, ::-1])
    detector = StandInDetector("Normal-ECG")
    pipeline = Pipeline(Settings(limits={"isolate": False}), detector=detector)  # type: ignore[arg-type]
    reading = pipeline.read_file(path)
    assert reading.result.label == "Not interpretable" and detector.calls == 0
    assert "2 row(s) of traces" in reading.result.reason
    assert reading.result.probability is None and reading.result.detections == ()
    assert reading.straightening == "none"
    assert np.array_equal(reading.page.image, strip)  # the SC shows the picture itself
