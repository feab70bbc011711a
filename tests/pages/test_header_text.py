"""header_text.py: the page header from the patient, acquisition and the cart's annotations."""

from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from ecg_dicom.pages.waveform import load_waveform
from variants import (
    MAC55,
    read_real,
)


def test_header_has_patient_settings_measurements_and_statements() -> None:
    header = load_waveform(read_real(MAC55)).header
    text = "\n".join(header)
    assert "ID: 66954" in header[0] and "GE MAC55" in header[1]
    assert "25 mm/s" in header[2] and "10 mm/mV" in header[2] and "0.05-150 Hz" in header[2]
    assert "QRS Duration 92 ms" in text and "Ventricular Heart Rate 81 bpm" in text
    assert "ATRIAL FIBRILLATION" in header
    example = "\n".join(load_waveform(read_real("pydicom-waveform")).header)
    assert "ECG NORMALE" in example and "RITMO SINUSALE" in example
    assert "QT Interval 368 ms" in example
    assert "Onset" not in example  # fiducial points are not header material
    assert "Galliera" in example and "Born: 1971-01-23" in example


def test_unreadable_annotation_is_left_out_of_the_header() -> None:
    ds = read_real(MAC55)
    tag = Tag(0x0040, 0xA30A)  # Numeric Value of "QRS Duration 92 ms", as a PACS could send it
    item = next(i for i in ds.WaveformAnnotationSequence if i.get("NumericValue") == 92)
    item[tag] = RawDataElement(tag, "DS", 4, b"9?2 ", 0, False, True)
    header = "\n".join(load_waveform(ds).header)
    assert "QRS Duration" not in header and "QT Interval 378 ms" in header
