"""Build the annotated Secondary Capture: the picture of the AI result a person looks at.

The SC Image IOD (PS3.3 A.8.1) is built with highdicom's :class:`~highdicom.sc.SCImage`
from the source ECG, then completed with what highdicom leaves to the caller:

* Patient and General Study attributes are copied from the source (PS3.3 C.7.1.1,
  C.7.2.1), so the result lands in the ECG's study; the series is new (C.7.3.1).
* Image Type ``DERIVED\\SECONDARY`` (C.7.6.1.1.2) and Conversion Type ``WSD``
  ("Workstation", C.8.6.1): the image is made by software, not digitised.
* Burned In Annotation ``YES`` (General Image module, PS3.3 C.7.6.1): the result
  is drawn into the pixels, and a de-identifying or display system must know.
* Series Description and Image Comments say it is an AI result, not for
  diagnostic use (as the IHE AI Results profile and MONAI Deploy do).
* Contributing Equipment (SOP Common module, PS3.3 C.12.1) names the algorithm with
  Purpose of Reference (Newcode1, 99IHE, "Processing Algorithm") as the IHE AIR
  profile and MONAI Deploy do; highdicom refuses codes outside its DCM list, so
  this item is written with pydicom.  The items highdicom adds are kept before
  it (highdicom itself as Processing Equipment; the sender's acquisition
  equipment when highdicom can describe it, i.e. for image sources).
* Patient Orientation (C.7.6.1, type 2C) is present and empty: a page of an
  ECG has no anatomical orientation (highdicom requires one for the PATIENT
  coordinate system, so a placeholder is given and then emptied).  Laterality
  (C.7.3.1, type 2C) is absent: Body Part Examined is HEART (PS3.16 Annex L),
  not a paired structure, so the condition is unsatisfied; dciodvfy reports a
  missing Laterality when the body part is not given, and warns when it is
  present but empty for an unpaired part.
* Source Instance Sequence (General Reference module, C.12.4) points back at
  the ECG the page was made from.

Pixel coordinates: the image is :func:`ecg_dicom.annotate.draw_result` of the
page; the page sits at :func:`ecg_dicom.annotate.layout_for` ``(page).offset``.
"""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from ecg_dicom.annotate import draw_result, short_version
from ecg_dicom.config import Settings
from ecg_dicom.identity import ResultUIDs, content_key, result_uids
from ecg_dicom.stages import Classification, Page

#: Series Description of every annotated SC (LO: at most 64 characters).
SC_SERIES_DESCRIPTION = "AI result - annotated ECG - not for diagnostic use"
#: (Newcode1, 99IHE, "Processing Algorithm"): IHE AIR's purpose of reference
#: for the algorithm in Contributing Equipment.
PROCESSING_ALGORITHM = ("Newcode1", "99IHE", "Processing Algorithm")


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


def _source_reference(source: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return ref


def _sc_image(
    source: Dataset, pixels: np.ndarray, series_uid: str, sop_uid: str, settings: Settings,
    series_number: int,
) -> hd.sc.SCImage:
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=settings.output.manufacturer,
        patient_orientation=("L", "F"),  # placeholder, emptied by build_sc (no orientation)
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )


def build_sc(
    source: Dataset,
    page: Page,
    result: Classification,
    settings: Settings,
    *,
    uids: ResultUIDs | None = None,
    series_number: int | None = None,
) -> Dataset:
    """The annotated Secondary Capture for one page of one source instance.

    Pure: the same inputs give the same object, UIDs included (see identity.py);
    only Content Date/Time, set by highdicom, differ between calls.
    """
    if uids is None:  # built alone (tests): the UIDs build.build_outputs would give
        key = content_key(source, page, result, settings)
        uids = result_uids(source.SOPInstanceUID, key, settings.output.uid_root)
    if series_number is None:
        series_number = settings.output.series_number_sc
    pixels = np.ascontiguousarray(draw_result(page, result))
    with warnings.catch_warnings():
        # Single-component patient names are legal, if old-fashioned (PS3.5 6.2.1.2);
        # they come from the sender and are copied unchanged.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person")
        sc = _sc_image(
            source, pixels, uids.sc_series, uids.sc_sop, settings, series_number
        )

    sc.PatientOrientation = []
    sc.BodyPartExamined = "HEART"
    if "Laterality" in sc:
        del sc.Laterality
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.ConversionType = "WSD"
    sc.BurnedInAnnotation = "YES"
    sc.SeriesDescription = SC_SERIES_DESCRIPTION
    sc.ImageComments = (
        f"AI result - not for diagnostic use. {result.model_name} "
        f"version {result.model_version}"
    )[:10240]
    sc.DerivationDescription = (
        "ECG page annotated with the boxes, classes and confidences found by "
        f"{result.model_name}"
    )[:1024]
    sc.SourceInstanceSequence = DicomSequence([_source_reference(source)])
    add_contributing_equipment(sc, algorithm_equipment(result, settings))
    if settings.output.institution_name:
        sc.InstitutionName = settings.output.institution_name[:64]
    return sc
