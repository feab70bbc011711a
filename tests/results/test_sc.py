"""The annotated SC: lossless JPEG-LS under 1 MB for real rendered ECGs, copies in
other lossless transfer syntaxes, Pixel Spacing that measures mm (and so ms and mV)
on rendered pages only, lossy compression of an image source carried, and the
patient's name drawn in its own script."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from ecg_dicom import pages as render
from ecg_dicom.config import Settings
from ecg_dicom.pages import page_from_dataset
from ecg_dicom.records import Classification, Detection, Page
from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.canvas import layout_for
from ecg_dicom.results.captions import identity_line
from ecg_dicom.results.compression import lossy_history, sc_for_transfer_syntax
from ecg_dicom.results.sc import SPACING_DESCRIPTION, build_sc
from realdata import ECG_IMAGES_DIR, real_ecg_paths
from results.samples import read_rgb, three_boxes

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the eli250 cart

MAX_SC_BYTES = 1_000_000
MODEL = "ecg-dicom YOLOv8m"
VERSION = "5e" * 32


def _result(page: Page) -> Classification:
    boxes = three_boxes(page)
    dets = (Detection("MI-ECG", 0.91, boxes[0]), Detection("History_MI", 0.42, boxes[1]),
            Detection("Normal-ECG", 0.2, boxes[2]))
    return Classification(label="Abnormal", class_name="MI-ECG", confidence=0.91,
                          abnormal_score=0.82, detections=dets, model_name=MODEL,
                          model_version=VERSION, runtime="onnx f32")


def _bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(BytesIO(data))


def _training_rgb(folder: str = "mi", index: int = 0) -> tuple[np.ndarray, Path]:
    path = sorted((ECG_IMAGES_DIR / folder).glob("*.jpg"))[index]
    return read_rgb(path), path


def _image_source(rgb: np.ndarray, **patient: str) -> Dataset:
    """An uncompressed Secondary Capture of a scanned ECG, read back from bytes."""
    ds = hd.sc.SCImage(
        pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", study_instance_uid=generate_uid(),
        series_instance_uid=generate_uid(), series_number=1, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="scanner", patient_id=patient.get("id", "IMG-1"),
        patient_name=patient.get("name", "Doe^Jane"), patient_birth_date="19600101",
        patient_sex="F", accession_number="ACC1", study_id="S1", study_date="20240102",
        study_time="101010", referring_physician_name="Ref^Doctor",
        patient_orientation=("L", "F"), specific_character_set=patient.get("charset"),
    )
    return _read(_bytes(ds))


def _jpeg_source(path: Path) -> Dataset:
    """A real JPEG file as a JPEG Baseline Secondary Capture, without Lossy Image
    Compression attributes (as some scanners send it)."""
    rgb = read_rgb(path)
    ds = _image_source(rgb)
    ds.PixelData = encapsulate([path.read_bytes()])
    ds["PixelData"].VR = "OB"
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    for keyword in ("LossyImageCompression", "LossyImageCompressionRatio",
                    "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)
    return _read(_bytes(ds))


@pytest.fixture(scope="module")
def rendered() -> list[tuple[str, Dataset, Page, Dataset, bytes]]:
    """(name, source, page, SC, SC bytes) for every real ECG, rendered."""
    built: list[tuple[str, Dataset, Page, Dataset, bytes]] = []
    for path in real_ecg_paths():
        source = pydicom.dcmread(path)
        page = page_from_dataset(source)
        sc = build_sc(source, page, _result(page), Settings())
        built.append((path.parent.name, source, page, sc, _bytes(sc)))
    return built


def test_sc_is_jpeg_ls_lossless(rendered: list[tuple[str, Dataset, Page, Dataset, bytes]]) -> None:
    for name, source, page, _sc, data in rendered:
        back = _read(data)
        assert back.file_meta.TransferSyntaxUID == JPEGLSLossless, name
        assert back.LossyImageCompression == "00", name  # a rendered page: never lossy
        expected = draw_result(page, _result(page), identity_line(source))
        assert np.array_equal(back.pixel_array, expected), name  # lossless, bit for bit


def test_real_rendered_ecgs_are_under_one_megabyte(
    rendered: list[tuple[str, Dataset, Page, Dataset, bytes]],
) -> None:
    sizes = {name: len(data) for name, _, _, _, data in rendered}
    native = {name: sc.Rows * sc.Columns * 3 for name, _, _, sc, _ in rendered}
    assert all(size <= MAX_SC_BYTES for size in sizes.values()), sizes
    assert all(sizes[n] < native[n] / 5 for n in sizes), (sizes, native)


def test_real_image_is_compressed_losslessly() -> None:
    """A decoded photograph of an ECG is noisy: lossless, it is still far smaller than
    native, and no pixel is lost."""
    rgb, _ = _training_rgb()
    source = _image_source(rgb)
    page = page_from_dataset(source)
    data = _bytes(build_sc(source, page, _result(page), Settings()))
    back = _read(data)
    assert back.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert len(data) < back.Rows * back.Columns * 3 / 2
    assert np.array_equal(
        back.pixel_array, draw_result(page, _result(page), identity_line(source)))


def test_copies_in_other_lossless_syntaxes(
    rendered: list[tuple[str, Dataset, Page, Dataset, bytes]],
) -> None:
    _, _, _, sc, data = rendered[0]
    pixels = _read(data).pixel_array
    sizes = {}
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                   DeflatedExplicitVRLittleEndian, RLELossless, JPEGLSLossless):
        copy = sc_for_transfer_syntax(sc, syntax)
        assert copy.SOPInstanceUID == sc.SOPInstanceUID  # the same instance, re-encoded
        raw = _bytes(copy)
        back = _read(raw)
        assert back.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(back.pixel_array, pixels), syntax.name
        sizes[syntax] = len(raw)
    assert sc.file_meta.TransferSyntaxUID == JPEGLSLossless  # the original is untouched
    assert sizes[DeflatedExplicitVRLittleEndian] < sizes[ExplicitVRLittleEndian] / 10
    assert sizes[ExplicitVRLittleEndian] > 5_000_000
    # Back from an uncompressed copy to JPEG-LS.
    again = sc_for_transfer_syntax(sc_for_transfer_syntax(sc, ExplicitVRLittleEndian),
                                   JPEGLSLossless)
    assert np.array_equal(_read(_bytes(again)).pixel_array, pixels)
    with pytest.raises(ValueError, match="lossless"):
        sc_for_transfer_syntax(sc, JPEGBaseline8Bit)


def test_pixel_spacing_measures_paper_mm_on_rendered_pages(
    rendered: list[tuple[str, Dataset, Page, Dataset, bytes]],
) -> None:
    for name, _, page, sc, data in rendered:
        back = _read(data)
        row, column = (float(v) for v in back.PixelSpacing)
        assert row == column == pytest.approx(1 / render.PX_PER_MM, rel=1e-6), name
        assert [float(v) for v in back.NominalScannedPixelSpacing] == [row, column]
        assert back.PixelSpacingCalibrationType == "FIDUCIAL"
        assert back.PixelSpacingCalibrationDescription == SPACING_DESCRIPTION
        # A caliper across a lead segment: mm / 25 mm/s = the seconds it shows.
        for region in page.regions:
            mm = (region.x1 - region.x0) * column
            assert mm / render.PAPER_SPEED_MM_S == pytest.approx(region.t1 - region.t0,
                                                                  rel=1e-3), name
        # And upright: 1 mV is 10 mm.
        assert 1000 * render.px_per_microvolt() * row == pytest.approx(render.GAIN_MM_MV)
        assert sc.PixelSpacing == back.PixelSpacing


def test_no_pixel_spacing_for_images_of_unknown_scale() -> None:
    rgb, _ = _training_rgb()
    source = _image_source(rgb)
    sc = build_sc(source, page_from_dataset(source), _result(page_from_dataset(source)),
                  Settings())
    for keyword in ("PixelSpacing", "NominalScannedPixelSpacing", "PixelSpacingCalibrationType",
                    "PixelSpacingCalibrationDescription"):
        assert keyword not in sc, keyword


def test_lossy_jpeg_source_is_carried_into_the_sc() -> None:
    _, path = _training_rgb("normal")
    source = _jpeg_source(path)
    page = page_from_dataset(source)
    assert page.source_kind == "image"
    back = _read(_bytes(build_sc(source, page, _result(page), Settings())))
    assert back.LossyImageCompression == "01"
    assert list(back.LossyImageCompressionMethod) == ["ISO_10918_1"] or (
        back.LossyImageCompressionMethod == "ISO_10918_1")
    native = source.Rows * source.Columns * 3
    ratio = float(back.LossyImageCompressionRatio)
    assert ratio == pytest.approx(native / path.stat().st_size, rel=0.01)
    assert back.file_meta.TransferSyntaxUID == JPEGLSLossless  # not re-compressed lossily


def test_stated_lossy_history_is_copied() -> None:
    rgb, _ = _training_rgb()
    source = _image_source(rgb)
    source.LossyImageCompression = "01"
    source.LossyImageCompressionRatio = ["8.5", "2.0"]
    source.LossyImageCompressionMethod = ["ISO_10918_1", "ISO_15444_1"]
    page = page_from_dataset(source)
    back = _read(_bytes(build_sc(source, page, _result(page), Settings())))
    assert back.LossyImageCompression == "01"
    assert [str(v) for v in back.LossyImageCompressionRatio] == ["8.5", "2.0"]
    assert list(back.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]


def test_lossless_sources_stay_lossless(
    rendered: list[tuple[str, Dataset, Page, Dataset, bytes]],
) -> None:
    rgb, _ = _training_rgb()
    source = _image_source(rgb)
    assert lossy_history(source) is None
    source.LossyImageCompression = "00"
    assert lossy_history(source) is None
    for _, ecg, _, sc, _ in rendered:
        assert sc.LossyImageCompression == "00"
        assert lossy_history(ecg) is None


def test_patient_name_is_drawn_in_its_own_script() -> None:
    """A Japanese name (ISO_IR 192) is drawn with CJK glyphs: the identity row of the
    SC differs from the same SC of a '?'-mangled name, and the SC declares UTF-8."""
    rgb, _ = _training_rgb()
    japanese = _image_source(rgb, name="Yamada^Tarou=山田^太郎", charset="ISO_IR 192")
    mangled = _image_source(rgb, name="Yamada^Tarou=??^??", charset="ISO_IR 192")
    page = page_from_dataset(japanese)
    layout = layout_for(page)
    rows = slice(layout.banner + layout.decision_row, layout.top)
    a = build_sc(japanese, page, _result(page), Settings())
    b = build_sc(mangled, page, _result(page), Settings())
    assert a.SpecificCharacterSet == "ISO_IR 192"
    assert _read(_bytes(a)).PatientName == "Yamada^Tarou=山田^太郎"
    assert not np.array_equal(a.pixel_array[rows], b.pixel_array[rows])
    assert np.array_equal(a.pixel_array[: rows.start], b.pixel_array[: rows.start])
    assert (a.pixel_array[rows].min(axis=2) < 128).sum() > 500
