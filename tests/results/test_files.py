"""files.py: Part 10 files named from sanitised UIDs, only ever inside the output
folder, written atomically; read back and sent SC before SR."""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from ecg_dicom import durable
from ecg_dicom.records import Outputs
from ecg_dicom.results.files import (
    encode_part10,
    read_kept,
    safe_uid,
    sending_order,
    write_outputs,
)

#: The tests build datasets with deliberately ill-formed UIDs.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid value for VR UI"),
    pytest.mark.filterwarnings("ignore:The value length .* exceeds the maximum length"),
]

SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


def _ds(sop_class: str, uid: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid
    ds.Modality = modality
    ds.PatientName = "Doe^Jane"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _outputs(sc_uid: str = "1.2.3.4", sr_uid: str = "1.2.3.5") -> Outputs:
    return Outputs(sc=_ds(SC_CLASS, sc_uid, "OT"), sr=_ds(SR_CLASS, sr_uid, "SR"))


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_writes_sc_then_sr_as_part10_files(tmp_path: Path) -> None:
    root = tmp_path / "out" / "nested"
    paths = write_outputs(_outputs(), root)
    assert [p.name for p in paths] == ["SC-1.2.3.4.dcm", "SR-1.2.3.5.dcm"]
    assert all(p.parent == root.resolve() for p in paths)
    assert paths[0].read_bytes()[128:132] == b"DICM"
    assert pydicom.dcmread(paths[1]).SOPInstanceUID == "1.2.3.5"
    assert _tree(root) == {"SC-1.2.3.4.dcm", "SR-1.2.3.5.dcm"}  # no temporary files left


def test_rewriting_the_same_result_replaces_it(tmp_path: Path) -> None:
    write_outputs(_outputs(), tmp_path)
    write_outputs(_outputs(), tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(
    "uid",
    ["../../evil", "/etc/passwd", "a/b/../../c", "..", "1.2/../../3", "C:\\x\\y",
     "1.2.3\x00/x", "1" * 300, "\xe9\xe9/..\\etc", "~root"],
)
def test_nothing_is_written_outside_root(tmp_path: Path, uid: str) -> None:
    root = tmp_path / "root"
    paths = write_outputs(_outputs(uid, uid + "9"), root)
    assert _tree(tmp_path) == {"root", *(f"root/{p.name}" for p in paths)}
    for path in paths:
        assert path.parent == root.resolve()
        name = path.name
        assert name.endswith(".dcm") and name.startswith(("SC-", "SR-"))
        assert set(name[3:-4]) <= set("0123456789._abcdef"), name
        assert len(name) < 80


def test_a_dataset_without_uid_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises((AttributeError, ValueError)):
        write_outputs(_outputs("", ""), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_distinct_ill_formed_uids_get_distinct_names() -> None:
    a, b = "1.2..3", "1.2.3."
    assert safe_uid(a) != safe_uid(b)
    assert safe_uid("1.2.3") == "1.2.3"


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    root = tmp_path / "root"
    root.mkdir()
    (root / "SC-1.2.3.4.dcm").symlink_to(outside)
    write_outputs(_outputs(), root)
    assert outside.read_text() == "keep me"
    assert not (root / "SC-1.2.3.4.dcm").is_symlink()


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(durable.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_outputs(_outputs(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_file_content_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(durable.os, "fsync", spy)
    write_outputs(_outputs(), tmp_path)
    assert len(synced) >= 4  # each file, and the folder after each rename


def test_non_datasets_are_refused(tmp_path: Path) -> None:
    sr = _ds(SR_CLASS, "1.2", "SR")
    with pytest.raises(TypeError):
        write_outputs(Outputs(sc=b"not a dataset", sr=sr), tmp_path)  # type: ignore[arg-type]


def test_part10_bytes_have_preamble_and_file_meta() -> None:
    data = encode_part10(_ds(SC_CLASS, "1.2.3.4", "OT"))
    assert data[:128] == b"\0" * 128 and data[128:132] == b"DICM"
    read = pydicom.dcmread(BytesIO(data))
    assert read.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_sending_order_is_sc_before_sr_otherwise_as_given() -> None:
    sr = _ds(SR_CLASS, "1.2.3.5", "SR")
    sc = _ds(SC_CLASS, "1.2.3.4", "OT")
    other = _ds(SC_CLASS, "1.2.3.6", "ECG")
    ordered = sending_order([sr, sc, other])
    assert [d.SOPInstanceUID for d in ordered] == ["1.2.3.4", "1.2.3.6", "1.2.3.5"]


def test_kept_results_are_read_back_in_sending_order(tmp_path: Path) -> None:
    # "SC-9..." sorts after "SR-1..." by name: the order is the SR's Modality, not the name.
    write_outputs(Outputs(sc=_ds(SC_CLASS, "9.9", "OT"), sr=_ds(SR_CLASS, "1.1", "SR")), tmp_path)
    kept = read_kept(tmp_path)
    assert [d.Modality for d in kept] == ["OT", "SR"]
    assert [d.SOPInstanceUID for d in kept] == ["9.9", "1.1"]
    assert read_kept(tmp_path / "none") == []

