"""ingest.result_origin: which received images are AI results (issue 10, item 1).

Each case is a Secondary Capture of a real ECG print-out (../shared/data/ecg-images),
written as a Part 10 file and read the way the C-STORE handler reads it (the fast header
scan, then pydicom for Contributing Equipment only)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from ecg_dicom.config import Settings
from ecg_dicom.dicom.ingest import check_dataset, result_origin
from ecg_dicom.sop import SECONDARY_CAPTURE
from realdata import ECG_IMAGES_DIR

OURS = Settings().output.manufacturer
SITE_ROOT = "1.2.999.42."


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _equipment(manufacturer: str, purpose: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.Manufacturer, item.ManufacturerModelName = manufacturer, "Model 7"
    item.PurposeOfReferenceCodeSequence = Sequence([_code(*purpose)])
    return item


ALGORITHM = ("Newcode1", "99IHE", "Processing Algorithm")
PROCESSING_EQUIPMENT = ("109102", "DCM", "Processing Equipment")


def capture(tmp_path: Path, *, uid: str | None = None, manufacturer: str = "Scanner Co",
            burned_in: str | None = None, equipment: list[Dataset] | None = None) -> Path:
    picture = cv2.imread(str(min((ECG_IMAGES_DIR / "normal").glob("*.jpg"))))
    assert picture is not None
    page = picture[:200, :300, ::-1]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    instance = UID(uid) if uid else generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = instance
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.Manufacturer = "OT", manufacturer
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    if equipment is not None:
        ds.ContributingEquipmentSequence = Sequence(equipment)
    ds.Rows, ds.Columns = page.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(page).tobytes()
    path = tmp_path / "sc.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def origin(path: Path, settings: Settings | None = None) -> tuple[str, str] | None:
    return result_origin(path, check_dataset(path, SECONDARY_CAPTURE), settings or Settings())


def test_a_plain_scanned_page_is_an_ecg_input(tmp_path: Path) -> None:
    assert origin(capture(tmp_path)) is None
    # A pydicom UID (the default root is pydicom's shared one) alone says nothing.
    assert origin(capture(tmp_path, burned_in="YES")) is None


def test_our_result_by_its_contributing_equipment(tmp_path: Path) -> None:
    path = capture(tmp_path, burned_in="YES",
                   equipment=[_equipment("Scanner Co", PROCESSING_EQUIPMENT),
                              _equipment(OURS, ALGORITHM)])
    kind, why = origin(path)  # type: ignore[misc]
    assert kind == "own_result" and why.startswith("an ecg-dicom result")
    # Ours whatever skip_ai_results says.
    assert origin(path, Settings(dicom={"skip_ai_results": False}))[0] == "own_result"  # type: ignore[index]


def test_our_result_by_uid_root(tmp_path: Path) -> None:
    site = Settings(output={"uid_root": SITE_ROOT})
    assert origin(capture(tmp_path, uid=SITE_ROOT + "7.1"), site)[0] == "own_result"  # type: ignore[index]
    # Under pydicom's shared root, the UID counts only with our Manufacturer.
    assert origin(capture(tmp_path, manufacturer=OURS))[0] == "own_result"  # type: ignore[index]
    assert origin(capture(tmp_path, uid=SITE_ROOT + "7.1")) is None  # not our root


def test_another_ai_s_burned_in_result(tmp_path: Path) -> None:
    path = capture(tmp_path, burned_in="YES", equipment=[_equipment("Other AI", ALGORITHM)])
    assert origin(path) == ("ai_result", "burned-in AI result of Other AI / Model 7")
    assert origin(path, Settings(dicom={"skip_ai_results": False})) is None


@pytest.mark.parametrize(("burned_in", "purpose"), [
    ("NO", ALGORITHM),  # an AI touched it but drew nothing into it
    ("YES", PROCESSING_EQUIPMENT),  # burned-in text from an ordinary workstation
])
def test_not_an_ai_result(tmp_path: Path, burned_in: str, purpose: tuple[str, str, str]) -> None:
    path = capture(tmp_path, burned_in=burned_in, equipment=[_equipment("Other AI", purpose)])
    assert origin(path) is None
