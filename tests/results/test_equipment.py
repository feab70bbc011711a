"""equipment.py: the source device as Acquisition Equipment (first, only one), the
algorithm as Processing Algorithm, nothing invented."""

from __future__ import annotations

from pydicom import Dataset

from ecg_dicom.config import Settings
from ecg_dicom.records import Classification
from ecg_dicom.results.equipment import (
    acquisition_datetime,
    add_contributing_equipment,
    algorithm_equipment,
    set_source_equipment,
    source_equipment,
)
from ecg_dicom.sop import PROCESSING_ALGORITHM


def _cart(**values: str) -> Dataset:
    ds = Dataset()
    ds.Manufacturer = "GE"
    ds.ManufacturerModelName = "MAC55"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _purposes(ds: Dataset) -> list[str]:
    return [i.PurposeOfReferenceCodeSequence[0].CodeValue for i in ds.ContributingEquipmentSequence]


def _result() -> Classification:
    return Classification(label="Normal", class_name="Normal-ECG", confidence=0.9,
                          abnormal_score=0.1, detections=(), model_name="m",
                          model_version="ab" * 32, runtime="onnx f32")


def test_acquisition_datetime_from_datetime_or_date_and_time() -> None:
    assert acquisition_datetime(_cart(AcquisitionDateTime="20240102101010")) == "20240102101010"
    both = _cart(AcquisitionDate="20240102", AcquisitionTime="1010")
    assert acquisition_datetime(both) == "202401021010"
    assert acquisition_datetime(_cart(AcquisitionDateTime="yesterday")) is None


def test_no_manufacturer_no_item() -> None:
    assert source_equipment(Dataset()) is None
    item = source_equipment(_cart(StationName=""))
    assert item is not None and item.Manufacturer == "GE" and "StationName" not in item


def test_source_device_first_and_the_only_acquisition_item() -> None:
    ds = Dataset()
    add_contributing_equipment(ds, source_equipment(_cart(Manufacturer="Other")) or Dataset())
    add_contributing_equipment(ds, algorithm_equipment(_result(), Settings()))
    set_source_equipment(ds, _cart())
    assert _purposes(ds) == ["109101", PROCESSING_ALGORITHM[0]]
    assert ds.ContributingEquipmentSequence[0].Manufacturer == "GE"
    assert ds.ContributingEquipmentSequence[1].SoftwareVersions == "ab" * 6
