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
* Contributing Equipment (SOP Common module, PS3.3 C.12.1): the source device,
  highdicom, and the algorithm (:mod:`ecg_dicom.results.equipment`).
* Patient Orientation (C.7.6.1, type 2C) is present and empty: a page of an
  ECG has no anatomical orientation (highdicom requires one for the PATIENT
  coordinate system, so a placeholder is given and then emptied).  Laterality
  (C.7.3.1, type 2C) is absent: Body Part Examined is HEART (PS3.16 Annex L),
  not a paired structure, so the condition is unsatisfied; dciodvfy reports a
  missing Laterality when the body part is not given, and warns when it is
  present but empty for an unpaired part.
* Source Instance Sequence (General Reference module, C.12.4) points back at
  the ECG the page was made from.
* Identity and order context (Issuer of Patient ID, Other Patient IDs, Accession
  Number issuer, Request Attributes, Timezone Offset, Specific Character Set...)
  is completed by :func:`ecg_dicom.results.context.copy_context`.
* Pixel Spacing (0028,0030), for rendered waveforms only (:func:`pixel_spacing`):
  the SC Image module (C.8.6.2) includes the Basic Pixel Spacing Calibration
  Macro (PS3.3 Table 10-10), so a viewer's calipers measure millimetres of ECG
  paper, which the page's fixed scale turns into time and voltage: 25 mm/s, so
  1 mm = 40 ms; 10 mm/mV, so 1 mm = 0.1 mV = 100 uV (render.py).  Nominal
  Scanned Pixel Spacing (0018,2010), "physical distance on the media being
  digitized", says the same of the page; Pixel Spacing Calibration Type
  FIDUCIAL with its description names the grid as the object of known size.
  A picture of unknown scale (a received image, a PDF) gets none of these: no
  spacing is better than a wrong one.
* Transfer syntax JPEG-LS Lossless, and the lossy history of an image source
  carried (Lossy Image Compression, PS3.3 C.7.6.1.1.5): :mod:`ecg_dicom.results.compression`.

Pixel coordinates: the image is :func:`ecg_dicom.results.annotate.draw_result` of the
page; the page sits at :func:`ecg_dicom.results.canvas.layout_for` ``(page).offset``.
"""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from ecg_dicom.config import Settings
from ecg_dicom.records import Classification, Page
from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.captions import identity_line
from ecg_dicom.results.charset import character_set_for
from ecg_dicom.results.compression import SC_TRANSFER_SYNTAX, set_lossy_compression
from ecg_dicom.results.context import copy_context
from ecg_dicom.results.equipment import (
    add_contributing_equipment,
    algorithm_equipment,
    set_source_equipment,
)
from ecg_dicom.results.uids import ResultUIDs, uids_for

#: Series Description of every annotated SC (LO: at most 64 characters).
SC_SERIES_DESCRIPTION = "AI result - annotated ECG - not for diagnostic use"
#: Pixel Spacing Calibration Description (0028,0A04) of a rendered page (LO, <= 64).
SPACING_DESCRIPTION = "ECG grid: 25 mm/s (1 mm = 40 ms), 10 mm/mV (1 mm = 0.1 mV)"


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
        transfer_syntax_uid=SC_TRANSFER_SYNTAX,
        specific_character_set=character_set_for(source),
    )


def build_sc(
    source: Dataset, page: Page, result: Classification, settings: Settings, *,
    uids: ResultUIDs | None = None, series_number: int | None = None,
) -> Dataset:
    """The annotated Secondary Capture for one page of one source instance.

    Pure: the same inputs give the same object, UIDs included (see uids.py);
    only Content Date/Time, set by highdicom, differ between calls.
    """
    if uids is None:  # built alone (tests): the UIDs build.build_outputs would give
        uids = uids_for(source, page, result, settings)
    if series_number is None:
        series_number = settings.output.series_number_sc
    pixels = np.ascontiguousarray(draw_result(page, result, identity_line(source)))
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
    set_source_equipment(sc, source)  # the cart as Acquisition Equipment (equipment.py)
    if settings.output.institution_name:
        sc.InstitutionName = settings.output.institution_name[:64]
    spacing = pixel_spacing(page)
    if spacing is not None:
        sc.PixelSpacing = [spacing, spacing]
        sc.NominalScannedPixelSpacing = [spacing, spacing]
        sc.PixelSpacingCalibrationType = "FIDUCIAL"
        sc.PixelSpacingCalibrationDescription = SPACING_DESCRIPTION
    set_lossy_compression(sc, source, page)
    copy_context(source, sc)
    if sc.file_meta.TransferSyntaxUID.is_encapsulated:
        # Encapsulated Pixel Data has undefined length (PS3.5 A.4); highdicom leaves the
        # element's flag unset, and dcmtk refuses an explicit length on the wire.
        sc["PixelData"].is_undefined_length = True
    return sc


def pixel_spacing(page: Page) -> str | None:
    """Pixel Spacing of the annotated SC in mm (DS text), or None for an unknown scale.

    A rendered page is drawn at ``page.px_per_mm`` pixels per millimetre of ECG
    paper (render.PX_PER_MM); the annotated image adds bands above and below the
    page without scaling it, so the spacing holds for the whole image.  At 25 mm/s
    and 10 mm/mV one millimetre across is 40 ms and one millimetre up is 0.1 mV.
    """
    if not page.px_per_mm or page.source_kind != "waveform":
        return None
    return f"{1.0 / float(page.px_per_mm):.10g}"[:16]
