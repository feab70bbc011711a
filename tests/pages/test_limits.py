"""Bounded work per object (issue 12, item 2): sizes checked from the header before
decoding, text laid out in bounded time, pages read in a child process with a time
limit and a memory budget.

Inputs are real ECGs and real encoders' files, with only the header values under
test changed: a PNG/JPEG whose header declares 100,000 x 100,000 pixels, an SC
declaring as much, a waveform declaring a hundred million samples, a PDF page
miles tall, a PDF that takes minutes to render, a 70,000-character name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from ecg_dicom.config import LimitsSettings
from ecg_dicom.errors import LimitError, NotInterpretableError
from ecg_dicom.pages import (
    PageReader,
    clip_text,
    page_from_dataset,
    page_from_file,
    page_from_image_bytes,
    page_from_pdf_bytes,
)
from ecg_dicom.pages.render import fit_text
from ecg_dicom.results.text import REGULAR_FONT, fit, text_width
from hostile import jpeg_declaring, pdf_page, png_declaring, slow_pdf

LONG = 70_000


def secondary_capture(rows: int, columns: int, *, frames: int = 1,
                      pixels: bytes | None = None) -> Dataset:
    """A native MONOCHROME2 SC declaring ``rows`` x ``columns`` (and ``frames``)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels if pixels is not None else b"\x00" * 64
    return ds


# -- text: linear layout, clipped values ------------------------------------------------
def test_header_fit_is_bounded_for_a_70000_character_line() -> None:
    started = time.perf_counter()
    cut = fit_text("Name: " + "A" * LONG, 700)
    assert time.perf_counter() - started < 2.0  # was quadratic: 46 s at 20,000 characters
    assert cut.endswith("...") and 10 < len(cut) < 700


def test_result_text_fit_is_bounded_and_still_cuts_where_the_width_ends() -> None:
    original = "Patient: " + "Wolfeschlegelsteinhausen" * (LONG // 24)
    started = time.perf_counter()
    text, size = fit(original, 26, 1500, REGULAR_FONT)
    assert time.perf_counter() - started < 3.0
    assert text.endswith("…") and size == round(0.7 * 26)
    assert text_width(text, size) <= 1500
    # one character more would not have fitted: the cut is where the width ends
    assert text_width(original[: len(text)] + "…", size) > 1500


def test_short_text_keeps_its_size_and_every_character() -> None:
    assert fit("Normal (probability 0.97)", 44, 1500, REGULAR_FONT) == (
        "Normal (probability 0.97)", 44)


def test_clip_text() -> None:
    assert clip_text("x" * 10, 16) == "x" * 10
    clipped = clip_text("x" * LONG, 1024)
    assert len(clipped) == 1024 and clipped.endswith("…")


def test_a_70000_character_patient_name_is_cut_on_the_page(real_ecgs: list[Path]) -> None:
    ds = pydicom.dcmread(real_ecgs[0])
    ds.PatientName = "Q" * LONG
    started = time.perf_counter()
    try:
        page = page_from_dataset(ds, LimitsSettings(max_text_chars=200))
    except NotInterpretableError as exc:
        header = exc.header
    else:
        header = page.header
    assert time.perf_counter() - started < 10.0
    assert header and all(len(line) <= 200 for line in header)
    assert header[0].startswith("Name: QQQ") and header[0].endswith("…")


# -- sizes declared in the header --------------------------------------------------------
@pytest.mark.parametrize("make", [png_declaring, jpeg_declaring])
def test_a_picture_declaring_100000_x_100000_is_refused_before_decoding(
    make: Callable[[int, int], bytes],
) -> None:
    data = make(60_000, 60_000)
    assert len(data) < 4096
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"limits\.max_pixels"):
        page_from_image_bytes(data, "bomb")
    assert time.perf_counter() - started < 1.0


def test_a_picture_within_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (300, 200), (250, 250, 250)).save(path)
    assert page_from_file(path).image.shape == (200, 300, 3)
    with pytest.raises(LimitError, match=r"300 x 200"):
        page_from_file(path, LimitsSettings(max_pixels=50_000))


def test_a_large_picture_is_handed_on_scaled_down_to_max_page_pixels(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (2400, 1200), (250, 250, 250)).save(path)
    limits = LimitsSettings(max_page_pixels=1_000_000)
    page = page_from_file(path, limits)
    height, width = page.image.shape[:2]
    assert height * width <= 1_000_000 and abs(width / height - 2.0) < 0.01
    assert page.image.flags["C_CONTIGUOUS"] and page.image.dtype == np.uint8
    assert page_from_file(path).image.shape == (1200, 2400, 3)  # the default keeps it


def test_an_image_object_over_max_pixels_or_max_frames_is_refused() -> None:
    with pytest.raises(LimitError, match=r"over limits\.max_pixels .*100000 x 100000"):
        page_from_dataset(secondary_capture(100_000, 100_000))
    with pytest.raises(LimitError, match=r"over limits\.max_frames \(16\): 1,000 frames"):
        page_from_dataset(secondary_capture(8, 8, frames=1000, pixels=b"\x00" * 64_000))
    page = page_from_dataset(secondary_capture(8, 8))
    assert page.image.shape == (8, 8, 3)


def test_a_jpeg_stream_larger_than_its_header_says_is_refused() -> None:
    """Rows and Columns say 64 x 64, the JPEG stream itself 60,000 x 60,000: the
    decoder would follow the stream, so the stream's header is checked too."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit
    ds = secondary_capture(64, 64, pixels=encapsulate([jpeg_declaring(60_000, 60_000)]))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "YBR_FULL_422", 3
    ds.PlanarConfiguration = 0
    with pytest.raises(LimitError, match=r"first frame of Pixel Data"):
        page_from_dataset(ds)


def test_a_waveform_declaring_more_samples_than_the_limit_is_refused_before_decoding(
    real_ecgs: list[Path],
) -> None:
    ds = pydicom.dcmread(real_ecgs[0])
    ds.WaveformSequence[0].NumberOfWaveformSamples = 10_000_000
    with pytest.raises(LimitError, match=r"limits\.max_waveform_samples"):
        page_from_dataset(ds)
    small = pydicom.dcmread(real_ecgs[0])
    with pytest.raises(LimitError, match=r"limits\.max_waveform_samples \(1,000\)"):
        page_from_dataset(small, LimitsSettings(max_waveform_samples=1000))


def test_a_tall_pdf_page_is_rendered_within_max_pixels() -> None:
    limits = LimitsSettings(max_pixels=4_000_000)
    started = time.perf_counter()
    page = page_from_pdf_bytes(pdf_page(20, 14_000), limits=limits)
    height, width = page.image.shape[:2]
    assert height * width <= limits.max_pixels
    assert height > 10 * width  # the same page, smaller
    assert time.perf_counter() - started < 10.0
    normal = page_from_pdf_bytes(pdf_page(595, 842), limits=limits)
    assert normal.image.shape[1] in (1600, 1601)  # A4 keeps the training width (pdfium rounds up)


# -- the child process: same pages, time limit, memory budget ---------------------------------
def test_the_child_reads_the_same_page_as_the_thread(real_ecgs: list[Path]) -> None:
    reader = PageReader(LimitsSettings())
    try:
        for path in real_ecgs[:2]:
            here = page_from_file(path)
            there = reader.page(path)
            assert np.array_equal(here.image, there.image)
            assert here.header == there.header and here.regions == there.regions
        assert 0 < reader.last_peak_rss_kb < 3072 * 1024
    finally:
        reader.close()


def test_a_render_over_stage_timeout_is_stopped_and_the_next_object_is_read(
    real_ecgs: list[Path], tmp_path: Path,
) -> None:
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(slow_pdf(100_000))  # minutes to render
    reader = PageReader(LimitsSettings(stage_timeout=3.0))
    try:
        started = time.perf_counter()
        with pytest.raises(LimitError, match=r"over limits\.stage_timeout \(3 s\)"):
            reader.page(slow)
        assert time.perf_counter() - started < 15.0
        assert reader.page(real_ecgs[0]).image.shape == (1137, 1600, 3)
    finally:
        reader.close()


def test_a_read_over_the_memory_budget_fails_and_the_child_stays_bounded(
    real_ecgs: list[Path], tmp_path: Path,
) -> None:
    """A 16-bit 6,000 x 6,000 picture is within max_pixels, but windowing it (float64
    copies) needs more than a 1,024 MB budget: it fails naming the budget, the child's
    peak memory stays under it, and the next object is read."""
    ds = secondary_capture(6000, 6000, pixels=np.arange(36_000_000, dtype=np.uint16).tobytes())
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    path = tmp_path / "wide.dcm"
    ds.save_as(path, enforce_file_format=True)
    reader = PageReader(LimitsSettings(worker_memory_mb=1024))
    try:
        with pytest.raises(LimitError, match=r"limits\.worker_memory_mb \(1024 MB\)"):
            reader.page(path)
        assert reader.page(real_ecgs[0]).image.shape == (1137, 1600, 3)
        assert reader.last_peak_rss_kb < 1024 * 1024
    finally:
        reader.close()
