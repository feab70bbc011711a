"""Build the Structured Report: the machine-readable AI result (PS3.16 TID 1500).

A Comprehensive 3D SR (PS3.3 A.35.13) holding a TID 1500 "Imaging Measurement
Report" (126000, DCM), built with highdicom's templates, never by hand:

* Observation context (TID 1001/1004): a **device** observer, the algorithm, with
  Device Observer UID (stable per model name and version, see identity.py), Name,
  Manufacturer and Model Name.
* One **summary** measurement group (TID 1501, image-level) first:
  Finding (121071, DCM) = Normal (SCT 164854000) or Abnormal ECG (SCT 102594003),
  both from CID 3677 "Summary Codes ECG"; Probability (122157, DCM) = the
  probability of that stated finding (:attr:`Classification.probability`: the
  abnormal score for Abnormal, 1 minus it for Normal), not a box's confidence;
  the qualitative evaluations "CAD Processing and Findings Summary" (111017, DCM)
  = "All algorithms succeeded; with findings" (111242) (CID 6047), and
  "Impression" (121073, DCM) = the named class (detect.decide), coded as its
  Finding; the group's source image is the annotated SC.
* One **planar ROI** measurement group (TID 1410) per **decisive** detection
  (:attr:`Classification.decisive`: the boxes the decision rule uses, the most
  confident Normal-ECG box and the most confident abnormal box): Tracking
  Identifier and Tracking UID (112039/112040), Finding (121071) coded per class
  (:data:`FINDING_CODES`), Algorithm Name/Version (111001/111003; the version is
  the weights' checksum) and Parameters (111002: the runtime), Probability
  (122157) with unit "1" (UCUM, no units), and the box as an Image Region
  (111030) — a closed POLYLINE (SR has no rectangle, PS3.3 C.18.6.1.2) in
  pixel coordinates of the **annotated SC**
  (the page offset of :func:`ecg_dicom.results.annotate.to_sc_pixels`).
  Other boxes do not count for the decision and are not coded in the SR (the
  annotated SC still draws them, for the person looking at it); their number in
  the Tracking Identifier ("Detection 3") is their place in the result's list.
* **Not interpretable** (no chart found, or a signal that cannot make a 12-lead
  page; :class:`~ecg_dicom.errors.NotInterpretableError`): no detection group,
  no Finding, no Probability, no Impression; "CAD Processing and Findings
  Summary" = (111245, DCM, "No algorithms succeeded; without findings") (CID 6047:
  the algorithm produced no result), and the reason as a TEXT qualitative
  evaluation (121106, DCM, "Comment") -- TID 1501 row 12 allows a qualitative
  evaluation "in text form" (CONTAINS TEXT; dcmtk's TID1501_MeasurementGroup
  implements it), highdicom builds only the coded one, so this one item is
  a highdicom :class:`~highdicom.sr.TextContentItem` appended to the group.
* Procedure Reported (121058, DCM; TID 1500 row 4, DCID 100, extensible) says
  what was recorded (:func:`procedure_reported`): (268400002, SCT, "12-Lead ECG")
  (CID 3670 "ECG Procedure Types") for a 12-Lead ECG object, or a General ECG
  object whose page shows the 12 standard leads; (266706003, SCT, "Continuous
  electrocardiogram monitoring") for an Ambulatory ECG (no CID of PS3.16 lists an
  ambulatory ECG procedure; the concept is in DICOM's SNOMED CT subset, pydicom's
  ``codes.SCT.ContinuousElectrocardiogramMonitoring``); (41976001, SCT, "Cardiac
  catheterization") (CID 3757 "Cardiac Diagnostic Procedures") for a Hemodynamic
  Waveform, recorded in the cath lab; and (ECG, DCM, "Electrocardiography")
  (CID 29) for a scanned page or PDF, or a General ECG of other leads: a picture
  does not say how many leads were recorded.
* Contributing Equipment (PS3.3 C.12.1): the source device as (109101, DCM,
  "Acquisition Equipment"), highdicom, and ecg-dicom as (Newcode1, 99IHE,
  "Processing Algorithm") (:mod:`ecg_dicom.results.equipment`).
* Evidence (PS3.3 C.17.2.2): the source ECG and the SC, both in the study, in
  Current Requested Procedure Evidence.  For waveform sources this is the
  waveform's reference: the ECG object itself is evidence.

Leads and time range of a box: TID 1500's measurement groups (TID 1410, 1501)
have no WAVEFORM or TCOORD row, so a box cannot be tied to the waveform there
without breaking the template.  The ECG-specific TID 3700 "ECG Report" has a
place for waveform references but none for boxes or confidence, is a separate
document root (it cannot be nested in TID 1500), and highdicom has no builder
for it; building it by hand is what this project rules out.  So the SR does
not carry a TCOORD; the leads and seconds a box covers on a rendered page are
written, for people, into the group's human-readable Tracking Identifier
(a TEXT item the template allows to hold any text), e.g.
"Detection 1: MI-ECG - leads II, aVF, 2.50-5.00 s".

VerificationFlag UNVERIFIED (no person has checked it), CompletionFlag COMPLETE,
PreliminaryFlag PRELIMINARY: an AI result awaiting a physician's read.
"""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ecg_dicom.config import Settings
from ecg_dicom.records import (
    NOT_INTERPRETABLE,
    STANDARD_LEADS,
    Classification,
    Detection,
    DocumentReference,
    Page,
)
from ecg_dicom.results.annotate import to_sc_pixels
from ecg_dicom.results.context import copy_context
from ecg_dicom.results.equipment import set_source_equipment
from ecg_dicom.results.sc import add_contributing_equipment, algorithm_equipment
from ecg_dicom.results.uids import (
    ResultUIDs,
    content_key,
    device_observer_uid,
    result_uids,
    tracking_uid,
)
from ecg_dicom.sop import (
    AMBULATORY_ECG,
    HEMODYNAMIC_WAVEFORM,
    TWELVE_LEAD_ECG,
    WAVEFORM_SOP_CLASSES,
)

# --- Codes (dicom-outputs.md; pydicom 3 concept dictionary, PS3.16) ----------
FINDING = Code("121071", "DCM", "Finding")
PROBABILITY = Code("122157", "DCM", "Probability")
NO_UNITS = Code("1", "UCUM", "no units")
IMPRESSION = Code("121073", "DCM", "Impression")
CAD_SUMMARY = Code("111017", "DCM", "CAD Processing and Findings Summary")
WITH_FINDINGS = Code("111242", "DCM", "All algorithms succeeded; with findings")
WITHOUT_FINDINGS = Code("111241", "DCM", "All algorithms succeeded; without findings")
#: CID 6047: the result of a not-interpretable input.
NO_ALGORITHM_SUCCEEDED = Code("111245", "DCM", "No algorithms succeeded; without findings")
#: Concept name of the TEXT qualitative evaluation holding the reason (CID 12101).
COMMENT = Code("121106", "DCM", "Comment")

# Procedure Reported (see the module docstring for the CIDs).
TWELVE_LEAD_ECG_PROCEDURE = Code("268400002", "SCT", "12-Lead ECG")
AMBULATORY_ECG_PROCEDURE = Code("266706003", "SCT", "Continuous electrocardiogram monitoring")
CATHETERIZATION_PROCEDURE = Code("41976001", "SCT", "Cardiac catheterization")
ECG_PROCEDURE = Code("ECG", "DCM", "Electrocardiography")

NORMAL_ECG = Code("164854000", "SCT", "Normal")
ABNORMAL_ECG = Code("102594003", "SCT", "Abnormal ECG")
#: The overall result (CID 3677 "Summary Codes ECG").
LABEL_CODES: dict[str, Code] = {"Normal": NORMAL_ECG, "Abnormal": ABNORMAL_ECG}
#: The Finding of each detector class.  "ECG HB" is the data set's "abnormal
#: heartbeat" folder: coded as an arrhythmia, not as an AV block of unknown degree.
FINDING_CODES: dict[str, Code] = {
    "MI-ECG": Code("57054005", "SCT", "Acute myocardial infarction"),
    "History_MI": Code("399211009", "SCT", "History of Myocardial Infarction"),
    "ECG HB": Code("698247007", "SCT", "Cardiac Arrhythmia"),
    "Normal-ECG": NORMAL_ECG,
}

#: Series Description of every SR (LO: at most 64 characters).
SR_SERIES_DESCRIPTION = "AI result - ECG classification - not for diagnostic use"


def finding_code(class_name: str) -> Code:
    """The coded Finding of a detector class; unknown classes are refused (strict writing)."""
    try:
        return FINDING_CODES[class_name]
    except KeyError:
        raise ValueError(
            f"detector class {class_name!r} has no code: add it to ecg_dicom.results.sr.FINDING_CODES"
        ) from None


def box_polyline(box: tuple[float, float, float, float], page: Page) -> np.ndarray:
    """The box as a closed POLYLINE (5 points, first = last) of (column, row)
    in annotated-SC pixels (PS3.3 C.18.6.1.1: SCOORD image coordinates)."""
    x0, y0, x1, y1 = to_sc_pixels(box, page)
    return np.array(
        [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float32
    )


def leads_under(box: tuple[float, float, float, float], page: Page) -> list[tuple[str, float, float]]:
    """(lead, t0, t1) for each lead region of a rendered page that the box overlaps,
    with the seconds of the overlap (LeadRegion maps x linearly to time)."""
    bx0, by0, bx1, by1 = box
    found: list[tuple[str, float, float]] = []
    for r in page.regions:
        x0, x1 = max(bx0, r.x0), min(bx1, r.x1)
        if x1 <= x0 or min(by1, r.y1) <= max(by0, r.y0) or r.x1 <= r.x0:
            continue
        per_px = (r.t1 - r.t0) / (r.x1 - r.x0)
        found.append((r.lead, r.t0 + (x0 - r.x0) * per_px, r.t0 + (x1 - r.x0) * per_px))
    return found


def detection_label(index: int, det: Detection, page: Page) -> str:
    """The human-readable Tracking Identifier of detection ``index`` (1-based)."""
    text = f"Detection {index}: {det.class_name}"
    covered = leads_under(det.box, page)
    if covered:
        leads = ", ".join(dict.fromkeys(lead for lead, _, _ in covered))
        t0 = min(t for _, t, _ in covered)
        t1 = max(t for _, _, t in covered)
        text += f" - leads {leads}, {t0:.2f}-{t1:.2f} s"
    return text


def _algorithm(result: Classification) -> hd.sr.AlgorithmIdentification:
    # Algorithm Parameters (111002, DCM): the runtime and precision that computed the
    # network (model.runtime "auto" depends on the machine), e.g. "runtime openvino-int8 int8".
    parameters = [f"runtime {result.runtime}"] if result.runtime else None
    return hd.sr.AlgorithmIdentification(
        name=result.model_name, version=result.model_version, parameters=parameters
    )


def _probability(value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=PROBABILITY, value=float(min(max(value, 0.0), 1.0)), unit=NO_UNITS
    )


def procedure_reported(source: Dataset, page: Page) -> Code:
    """The Procedure Reported for ``source`` (see the module docstring)."""
    sop_class = source.get("SOPClassUID")
    if sop_class == TWELVE_LEAD_ECG:
        return TWELVE_LEAD_ECG_PROCEDURE
    if sop_class == AMBULATORY_ECG:
        return AMBULATORY_ECG_PROCEDURE
    if sop_class == HEMODYNAMIC_WAVEFORM:
        return CATHETERIZATION_PROCEDURE
    if sop_class in WAVEFORM_SOP_CLASSES and set(STANDARD_LEADS) <= {r.lead for r in page.regions}:
        return TWELVE_LEAD_ECG_PROCEDURE
    return ECG_PROCEDURE


def _summary_group(
    sc: Dataset, result: Classification, sr_sop: str, uid_root: str
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    tracking = hd.sr.TrackingIdentifier(
        uid=tracking_uid(sr_sop, 0, uid_root), identifier="ECG classification"
    )
    source_images = [hd.sr.SourceImageForMeasurementGroup.from_source_image(sc)]
    probability = result.probability
    if result.label == NOT_INTERPRETABLE or probability is None:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            algorithm_id=_algorithm(result),
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(CAD_SUMMARY, NO_ALGORITHM_SUCCEEDED)
            ],
            source_images=source_images,
        )
        if result.reason:  # TID 1501 row 12: a qualitative evaluation in text form,
            items = group[0].ContentSequence  # right after the coded one (row 11)
            after = 1 + max(
                i for i, item in enumerate(items) if item.ValueType == "CODE"
                and item.ConceptNameCodeSequence[0].CodeValue == CAD_SUMMARY.value
            )
            items.insert(after, hd.sr.TextContentItem(
                name=COMMENT, value=f"Not interpretable: {result.reason}",
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            ))
        return group
    evaluations = [hd.sr.QualitativeEvaluation(CAD_SUMMARY, WITH_FINDINGS)]
    if result.class_name:
        evaluations.append(hd.sr.QualitativeEvaluation(IMPRESSION, finding_code(result.class_name)))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=LABEL_CODES[result.label],
        algorithm_id=_algorithm(result),
        measurements=[_probability(probability)],
        qualitative_evaluations=evaluations,
        source_images=source_images,
    )


def _detection_group(
    index: int, det: Detection, sc: Dataset, page: Page, result: Classification,
    sr_sop: str, uid_root: str,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=box_polyline(det.box, page),
        source_image=hd.sr.SourceImageForRegion.from_source_image(sc),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=tracking_uid(sr_sop, index, uid_root),
            identifier=detection_label(index, det, page),
        ),
        referenced_region=region,
        finding_type=finding_code(det.class_name),
        algorithm_id=_algorithm(result),
        measurements=[_probability(det.confidence)],
    )


def predecessor_documents(ref: DocumentReference) -> DicomSequence:
    """Predecessor Documents Sequence (0040,A360) naming the SR this one replaces
    (SR Document General module, PS3.3 C.17.2; Hierarchical SOP Instance Reference
    Macro, PS3.3 Table C.17-3): required when a document replaces another."""
    instance = Dataset()
    instance.ReferencedSOPClassUID = ref.sop_class_uid
    instance.ReferencedSOPInstanceUID = ref.sop_instance_uid
    series = Dataset()
    series.SeriesInstanceUID = ref.series_instance_uid
    series.ReferencedSOPSequence = DicomSequence([instance])
    study = Dataset()
    study.StudyInstanceUID = ref.study_instance_uid
    study.ReferencedSeriesSequence = DicomSequence([series])
    return DicomSequence([study])


def build_sr(
    source: Dataset,
    sc: Dataset,
    page: Page,
    result: Classification,
    settings: Settings,
    *,
    uids: ResultUIDs | None = None,
    series_number: int | None = None,
    predecessor: DocumentReference | None = None,
) -> Dataset:
    """The TID 1500 Comprehensive 3D SR for one page of one source instance.

    ``sc`` is the annotated SC built by :func:`ecg_dicom.results.sc.build_sc` from the same
    inputs: the SR's image regions are in its pixel space and reference it.
    """
    if result.label not in LABEL_CODES and result.label != NOT_INTERPRETABLE:
        raise ValueError(f"unknown result label {result.label!r}")
    out = settings.output
    if uids is None:  # built alone (tests): the UIDs build.build_outputs would give
        key = content_key(source, page, result, settings)
        uids = result_uids(source.SOPInstanceUID, key, out.uid_root)
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_observer_uid(result.model_name, result.model_version, out.uid_root),
            name=result.model_name[:64],
            manufacturer_name=out.manufacturer[:64],
            model_name=result.model_name[:64],
        ),
    )
    groups: list[
        hd.sr.MeasurementsAndQualitativeEvaluations
        | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    ] = [_summary_group(sc, result, uids.sr_sop, out.uid_root)]
    decisive = result.decisive
    for index, det in enumerate(result.detections, start=1):
        if det in decisive:  # only the boxes that count for the decision are findings
            groups.append(
                _detection_group(index, det, sc, page, result, uids.sr_sop, out.uid_root)
            )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure_reported(source, page),
        imaging_measurements=groups,
        referenced_images=[sc],
    )
    with warnings.catch_warnings():
        # Single-component patient names are legal, if old-fashioned (PS3.5 6.2.1.2);
        # they come from the sender and are copied unchanged.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person")
        sr = hd.sr.Comprehensive3DSR(
            evidence=[sc, source],
            content=report[0],
            series_instance_uid=uids.sr_series,
            series_number=out.series_number_sr if series_number is None else series_number,
            sop_instance_uid=uids.sr_sop,
            instance_number=1,
            manufacturer=out.manufacturer,
            institution_name=out.institution_name or None,
            is_complete=True,
            is_final=False,
            is_verified=False,
        )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    add_contributing_equipment(sr, algorithm_equipment(result, settings))
    set_source_equipment(sr, source)  # the cart, not our SC, acquired the ECG
    if predecessor is not None and predecessor.sop_instance_uid != sr.SOPInstanceUID:
        sr.PredecessorDocumentsSequence = list(predecessor_documents(predecessor))
    copy_context(source, sr)  # identity and order context (ecg_dicom.results.context)
    return sr
