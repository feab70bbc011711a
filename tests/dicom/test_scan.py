"""The handler's fast header scan agrees with pydicom and rejects broken files."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from ecg_dicom.dicom.scan import HeaderError, read_header, scan_header
from realdata import real_ecg_paths

WANTED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality")
PYDICOM_FILES = ["CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                 "JPEG2000.dcm", "waveform_ecg.dcm", "SC_rgb_rle.dcm"]


def assert_same_as_pydicom(path: Path) -> None:
    ds = pydicom.dcmread(path)
    header = scan_header(path, WANTED)
    assert header.tags == frozenset(int(t) for t in ds.keys())  # noqa: SIM118 (tags, not elements)
    assert header.transfer_syntax == ds.file_meta.TransferSyntaxUID
    for keyword in WANTED:
        if keyword in ds:
            assert header.get(keyword) == str(ds[keyword].value).strip()


@pytest.mark.parametrize("path", real_ecg_paths(), ids=lambda p: p.parent.name)
def test_scan_matches_pydicom_on_real_ecgs(path: Path) -> None:
    assert_same_as_pydicom(path)


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_scan_matches_pydicom_on_other_encodings(name: str) -> None:
    found = get_testdata_file(name)
    assert isinstance(found, str), name
    assert_same_as_pydicom(Path(found))


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_undefined_length_sequences_are_skipped(tmp_path: Path, syntax: UID) -> None:
    ds = pydicom.dcmread(real_ecg_paths()[-1])
    for seq in (ds.WaveformSequence, ds.WaveformAnnotationSequence):
        seq.is_undefined_length = True
        for item in seq:
            item.is_undefined_length_sequence_item = True
    ds.SOPInstanceUID = generate_uid()
    path = tmp_path / "undefined.dcm"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    pydicom.dcmread(path)  # sanity: a valid file
    assert_same_as_pydicom(path)


def test_truncated_and_garbage_files_are_refused(tmp_path: Path) -> None:
    data = real_ecg_paths()[0].read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(HeaderError):
        scan_header(truncated, WANTED)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 64)
    with pytest.raises(HeaderError):
        scan_header(garbage, WANTED)
    assert not read_header(garbage, WANTED).get("SOPInstanceUID")  # refused as a mismatch
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(HeaderError):
        read_header(empty, WANTED)


def test_trailing_padding_falls_back_to_pydicom(tmp_path: Path) -> None:
    padded = tmp_path / "padded.dcm"
    padded.write_bytes(real_ecg_paths()[1].read_bytes() + b"\x00\x01\x02")
    with pytest.raises(HeaderError):
        scan_header(padded, WANTED)
    assert read_header(padded, WANTED).has("WaveformSequence")
