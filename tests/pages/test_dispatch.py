"""pages.py: the dispatch the service and the CLI call, on real files and broken ones.

Every failure must surface as InputError / UnsupportedInputError naming what is
wrong, never as a pydicom or numpy exception.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.config import IGNORE
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag

from ecg_dicom.errors import (
    InputError,
    NotAnEcgError,
    NotInterpretableError,
    UnsupportedInputError,
)
from ecg_dicom.pages import dispatch
from ecg_dicom.pages.dispatch import page_from_dataset, page_from_file
from ecg_dicom.pages.layout import PX_PER_MM
from ecg_dicom.pages.render import render_page
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.records import STANDARD_LEADS as STANDARD
from ecg_dicom.records import Signals
from variants import (
    REAL_ECGS,
    ambulatory_ecg,
    encapsulated_pdf,
    general_ecg,
    hemodynamic,
    pdf_of,
    read_real,
    roundtrip,
    secondary_capture,
)


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_every_real_file_becomes_a_rendered_page(name: str) -> None:
    page = page_from_file(REAL_ECGS[name])
    assert page.source_kind == "waveform" and page.px_per_mm == PX_PER_MM
    assert page.image.shape == (1137, 1600, 3)
    assert {r.lead for r in page.regions} == set(STANDARD)
    assert np.array_equal(page.image, render_page(load_waveform(read_real(name))).image)


def test_waveform_classes_by_sop_class() -> None:
    # Fewer than 12 leads: drawn, one strip per lead, but not interpretable (render.py).
    for ds, leads in ((general_ecg(), ["I", "II", "III"]), (ambulatory_ecg(), ["II", "V5"]),
                      (hemodynamic("ECG"), ["II", "V5"])):
        with pytest.raises(NotInterpretableError, match="not a 12-lead ECG") as caught:
            page_from_dataset(ds)
        assert [r.lead for r in caught.value.page.regions] == leads  # type: ignore[attr-defined]


def test_hemodynamic_is_read_by_its_channels_whatever_its_modality() -> None:
    # Modality HD with ECG leads: read as the ECG object (here: 2 leads, not interpretable).
    with pytest.raises(NotInterpretableError, match="not a 12-lead ECG") as caught:
        page_from_dataset(hemodynamic("HD"))
    assert [r.lead for r in caught.value.page.regions] == ["II", "V5"]  # type: ignore[attr-defined]
    # Only the arterial pressure left: not an ECG at all.
    ds = hemodynamic("HD")
    group = ds.WaveformSequence[0]
    raw = np.frombuffer(group.WaveformData, "<i2").reshape(-1, 3)[:, 1]
    group.ChannelDefinitionSequence = [group.ChannelDefinitionSequence[1]]
    group.WaveformData, group.NumberOfWaveformChannels = raw.tobytes(), 1
    with pytest.raises(NotAnEcgError, match=r"Modality HD\) has no ECG lead .*\(ART\)"):
        page_from_dataset(ds)


def test_image_and_pdf_classes_by_sop_class() -> None:
    picture = render_page(load_waveform(read_real("ge-mac55"))).image[150:720, :800]
    sc = page_from_dataset(roundtrip(secondary_capture(picture)))
    assert sc.source_kind == "image" and np.array_equal(sc.image, picture)
    pdf = page_from_dataset(encapsulated_pdf(pdf_of(picture)))
    assert pdf.source_kind == "pdf"


def test_unknown_or_missing_sop_class() -> None:
    ds = read_real("ge-mac55")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    with pytest.raises(UnsupportedInputError, match=r"SOP Class UID \(0008,0016\) .*CT Image"):
        page_from_dataset(ds)
    del ds.SOPClassUID
    with pytest.raises(InputError, match=r"SOP Class UID \(0008,0016\) is missing"):
        page_from_dataset(ds)


def test_malformed_waveform_through_the_dispatch() -> None:
    ds = read_real("ge-mac55")
    del ds.WaveformSequence
    with pytest.raises(InputError, match=r"Waveform Sequence \(5400,0100\)"):
        page_from_dataset(ds)


def test_a_malformed_value_read_late_is_an_input_error() -> None:
    ds = read_real("ge-mac55")
    # A str in the UL element, as pydicom's tolerant reading lets it through (the
    # service reads with validation off: startup.configure_libraries).
    tag = Tag("NumberOfWaveformSamples")
    ds.WaveformSequence[0][tag] = DataElement(tag, "UL", "many", validation_mode=IGNORE)
    with pytest.raises(InputError, match="ValueError while reading the instance") as caught:
        page_from_dataset(ds)
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("bug", [
    ZeroDivisionError("float division by zero"),
    AttributeError("'Signals' object has no attribute 'lead'"),
    TypeError("unsupported operand type(s) for *: 'NoneType' and 'float'"),
    RuntimeError("a bug"),
])
def test_an_unexpected_exception_is_a_bug_not_bad_input(
    bug: Exception, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug propagates as itself (the worker retries and logs its traceback): it is
    never turned into a permanent InputError that reads like a bad file."""
    def broken(ds: Dataset, **_: object) -> Signals:
        raise bug

    monkeypatch.setattr(dispatch, "load_waveform", broken)
    with pytest.raises(type(bug)) as caught:
        page_from_dataset(read_real("ge-mac55"))
    assert caught.value is bug and not isinstance(caught.value, InputError)
    path = tmp_path / "ecg.dcm"
    read_real("ge-mac55").save_as(path, enforce_file_format=True)
    with pytest.raises(type(bug)) as caught:
        page_from_file(path)
    assert caught.value is bug and not isinstance(caught.value, InputError)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_dicom_files(cut: float, tmp_path: Path) -> None:
    data = REAL_ECGS["ge-mac55"].read_bytes()
    broken = tmp_path / "cut.dcm"
    broken.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError) as caught:
        page_from_file(broken)
    assert str(broken) in str(caught.value)


def test_bare_dataset_without_preamble(tmp_path: Path) -> None:
    ds = read_real("pydicom-waveform")
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    target = tmp_path / "bare.dcm"
    ds.save_as(target, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert target.read_bytes()[128:132] != b"DICM"
    assert len(page_from_file(target).regions) == 13


@pytest.mark.parametrize("content", [b"not a page", b"\x00" * 200, b"%PD", b"x" * 128 + b"DICN"])
def test_a_file_of_no_known_kind_is_refused_cleanly(content: bytes, tmp_path: Path) -> None:
    """A text file, zeros or a near-miss magic is bad input with a plain message, not a
    forced DICOM read of its bytes (pydicom would warn about every "element" it makes up;
    warnings are errors here, so this test fails on any)."""
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match="neither DICOM, PNG, JPEG nor PDF"):
        page_from_file(path)


def test_png_jpeg_and_pdf_files(tmp_path: Path) -> None:
    picture = render_page(load_waveform(read_real("ge-muse-mv360"))).image
    for name in ("page.png", "page.jpg", "page.noext"):
        path = tmp_path / name
        ext = ".jpg" if name.endswith(".jpg") else ".png"
        path.write_bytes(cv2.imencode(ext, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))[1].tobytes())
        page = page_from_file(path)
        assert page.source_kind == "image" and page.image.shape == picture.shape
    pdf = tmp_path / "page.pdf"
    pdf.write_bytes(pdf_of(picture))
    assert page_from_file(pdf).source_kind == "pdf"
    dicom_pdf = tmp_path / "pdf.dcm"
    encapsulated_pdf(pdf_of(picture[:400, :400])).save_as(dicom_pdf, enforce_file_format=True)
    assert page_from_file(dicom_pdf).source_kind == "pdf"


def test_files_that_are_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a file"):
        page_from_file(tmp_path / "missing.dcm")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        page_from_file(empty)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError):
        page_from_file(junk)
    text = tmp_path / "notes.txt"
    text.write_text("12-lead ECG, normal sinus rhythm\n" * 20)
    with pytest.raises(InputError):
        page_from_file(text)


def test_real_file_readable_by_pydicom_after_page() -> None:
    """page_from_dataset does not modify the data set it is given (the SC/SR need it)."""
    ds = read_real("ge-mac55")
    before = pydicom.dcmread(REAL_ECGS["ge-mac55"])
    page_from_dataset(ds)
    assert ds == before
