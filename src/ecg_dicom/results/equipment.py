"""Contributing Equipment of the results: the device that recorded the ECG.

The SOP Common module's Contributing Equipment Sequence (0018,A001) (PS3.3 C.12.1)
says which equipment contributed to an instance and how (Purpose of Reference,
CID 7005).  A result of ecg-dicom names, in this order:

1. the **source device** -- the cart, Holter recorder or scanner that acquired the
   ECG -- with Purpose of Reference (109101, DCM, "Acquisition Equipment") and the
   source's own Manufacturer, Manufacturer's Model Name, Device Serial Number,
   Software Versions, Institution, Department and Station Name: :func:`source_equipment`;
2. the library that wrote the object (highdicom adds itself as (109102, DCM,
   "Processing Equipment"));
3. ecg-dicom itself, the **processing algorithm** ((Newcode1, 99IHE, "Processing
   Algorithm") as the IHE AIR profile and MONAI Deploy name it; highdicom refuses
   codes outside its DCM list, so this item is written with pydicom):
   :func:`algorithm_equipment`, appended by :func:`add_contributing_equipment`.

Why this module: highdicom describes the *first evidence image* of an SR as its
acquisition equipment.  For our SR that is the annotated SC, made by ecg-dicom, so
the SR claimed ecg-dicom had acquired the ECG and lost the cart.  For the SC
highdicom names no acquisition equipment for a waveform source at all.
:func:`set_source_equipment` puts the source device first and drops any other
"Acquisition Equipment" item.  Used by sr.build_sr and sc.build_sc.

Values are copied only when present and well-formed: a Contributing Equipment
item needs a Manufacturer (type 1), so a source that names none gives no item
(nothing is invented), and a Contribution DateTime is written only from a valid
Acquisition DateTime (or Acquisition Date and Time) of the source.
"""

from __future__ import annotations

import re

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence

from ecg_dicom.config import Settings
from ecg_dicom.records import Classification
from ecg_dicom.results.captions import short_version
from ecg_dicom.sop import PROCESSING_ALGORITHM

#: Purpose of Reference (CID 7005 "Contributing Equipment Purposes of Reference").
ACQUISITION_EQUIPMENT = ("109101", "DCM", "Acquisition Equipment")
#: Source attributes that describe its equipment (General Equipment module,
#: PS3.3 C.7.5.1), copied into the item when present and not empty.
EQUIPMENT_KEYWORDS: tuple[str, ...] = (
    "Manufacturer", "InstitutionName", "InstitutionAddress", "StationName",
    "InstitutionalDepartmentName", "ManufacturerModelName", "DeviceSerialNumber",
    "SoftwareVersions",
)
#: PS3.5 6.2 DT: YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX].
_DT = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")
_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")


def _text(source: Dataset, keyword: str) -> str:
    value = source.get(keyword)
    return "" if value is None else str(value).strip()


def acquisition_datetime(source: Dataset) -> str | None:
    """The source's Acquisition DateTime (0008,002A), else its Acquisition Date and
    Time combined, as a valid DT string; None when neither is usable."""
    dt = _text(source, "AcquisitionDateTime")
    if dt and _DT.fullmatch(dt):
        return dt
    date, time = _text(source, "AcquisitionDate"), _text(source, "AcquisitionTime")
    if _DATE.fullmatch(date) and _TIME.fullmatch(time):
        return date + time
    return None


def source_equipment(source: Dataset) -> Dataset | None:
    """The Contributing Equipment item describing the device that acquired ``source``
    (Purpose of Reference (109101, DCM, "Acquisition Equipment")), or None when the
    source names no Manufacturer."""
    if not _text(source, "Manufacturer"):
        return None
    item = Dataset()
    for keyword in EQUIPMENT_KEYWORDS:
        if keyword in source and _text(source, keyword):
            element = source[keyword]
            item.add(DataElement(element.tag, element.VR, element.value))
    when = acquisition_datetime(source)
    if when:
        item.ContributionDateTime = when
    item.ContributionDescription = "Acquisition equipment of the source ECG"
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = ACQUISITION_EQUIPMENT
    item.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    return item


def _is_acquisition(item: Dataset) -> bool:
    codes = item.get("PurposeOfReferenceCodeSequence") or []
    return any(
        (str(c.get("CodeValue", "")), str(c.get("CodingSchemeDesignator", "")))
        == ACQUISITION_EQUIPMENT[:2]
        for c in codes
    )


def set_source_equipment(ds: Dataset, source: Dataset) -> None:
    """Make the source device the Acquisition Equipment of ``ds``: its item first in
    the Contributing Equipment Sequence (0018,A001), every other "Acquisition
    Equipment" item dropped, the remaining items kept in their order."""
    others = [i for i in ds.get("ContributingEquipmentSequence", []) if not _is_acquisition(i)]
    acquisition = source_equipment(source)
    items = ([acquisition] if acquisition is not None else []) + others
    ds["ContributingEquipmentSequence"] = DataElement(0x0018A001, "SQ", DicomSequence(items))


def algorithm_equipment(result: Classification, settings: Settings) -> Dataset:
    """The Contributing Equipment item naming the algorithm (PS3.3 C.7.5.1)."""
    item = Dataset()
    item.Manufacturer = settings.output.manufacturer
    item.ManufacturerModelName = result.model_name[:64]
    item.SoftwareVersions = [short_version(result.model_version)]
    if settings.output.institution_name:
        item.InstitutionName = settings.output.institution_name[:64]
    item.ContributionDescription = (
        f"AI result of {result.model_name}, weights {result.model_version}"
    )[:1024]
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = PROCESSING_ALGORITHM
    item.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    return item


def add_contributing_equipment(ds: Dataset, item: Dataset) -> None:
    """Append ``item`` to the Contributing Equipment Sequence (0018,A001) of ``ds``
    (SOP Common module, PS3.3 C.12.1), keeping the items already there."""
    items = list(ds.get("ContributingEquipmentSequence", []))
    ds["ContributingEquipmentSequence"] = DataElement(
        0x0018A001, "SQ", DicomSequence([*items, item])
    )
