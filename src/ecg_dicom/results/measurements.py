"""The SR's content: TID 1500 measurement groups for one result (PS3.16).

* One **summary** measurement group (TID 1501, image-level) first
  (:func:`summary_group`): Finding (121071, DCM) = Normal or Abnormal ECG;
  Probability (122157, DCM) = the probability of that stated finding
  (:attr:`Classification.probability`: the probability of abnormal for Abnormal, 1
  minus it for Normal; calibrated on out-of-fold predictions when the weights have a
  calibration, else the raw abnormal score, and the Algorithm Parameters say which),
  not a box's confidence; the qualitative evaluations "CAD
  Processing and Findings Summary" = "All algorithms succeeded; with findings",
  and "Impression" = the named class, coded as its Finding; the group's source
  image is the annotated SC.
* One **planar ROI** measurement group (TID 1410) per **decisive** detection
  (:func:`detection_group`; :attr:`Classification.decisive`: the boxes the
  decision rule uses, the most confident Normal-ECG box and the most confident
  abnormal box): Tracking Identifier and Tracking UID (112039/112040), Finding
  (121071) coded per class, Algorithm Name/Version (111001/111003; the version is
  the weights' checksum) and Parameters (111002: the runtime; whether the
  probability is calibrated; for a picture, what straightening did), Probability
  (122157) with unit "1" (UCUM, no units), and the box as an Image Region
  (111030) — a closed POLYLINE (SR has no rectangle, PS3.3 C.18.6.1.2) in pixel
  coordinates of the **annotated SC** (the page offset of
  :func:`ecg_dicom.results.canvas.to_sc_pixels`).  Other boxes do not count for
  the decision and are not coded in the SR (the annotated SC still draws them,
  for the person looking at it); their number in the Tracking Identifier
  ("Detection 3") is their place in the result's list.
* **Not interpretable** (no chart found, or a signal that cannot make a 12-lead
  page; :class:`~ecg_dicom.errors.NotInterpretableError`): no detection group,
  no Finding, no Probability, no Impression; "CAD Processing and Findings
  Summary" = (111245, DCM, "No algorithms succeeded; without findings") (CID 6047:
  the algorithm produced no result), and the reason as a TEXT qualitative
  evaluation (121106, DCM, "Comment") -- TID 1501 row 12 allows a qualitative
  evaluation "in text form" (CONTAINS TEXT; dcmtk's TID1501_MeasurementGroup
  implements it), highdicom builds only the coded one, so this one item is
  a highdicom :class:`~highdicom.sr.TextContentItem` appended to the group.

Leads and time range of a box: TID 1500's measurement groups (TID 1410, 1501)
have no WAVEFORM or TCOORD row, so a box cannot be tied to the waveform there
without breaking the template.  The ECG-specific TID 3700 "ECG Report" has a
place for waveform references but none for boxes or confidence, is a separate
document root (it cannot be nested in TID 1500), and highdicom has no builder
for it; building it by hand is what this project rules out.  So the SR does
not carry a TCOORD; the leads and seconds a box covers on a rendered page are
written, for people, into the group's human-readable Tracking Identifier
(a TEXT item the template allows to hold any text), e.g.
"Detection 1: MI-ECG - leads II, aVF, 2.50-5.00 s" (:func:`detection_label`).
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom import Dataset

from ecg_dicom.records import NOT_INTERPRETABLE, Classification, Detection, Page
from ecg_dicom.results.canvas import to_sc_pixels
from ecg_dicom.results.codes import (
    CAD_SUMMARY,
    COMMENT,
    IMPRESSION,
    LABEL_CODES,
    NO_ALGORITHM_SUCCEEDED,
    NO_UNITS,
    PROBABILITY,
    WITH_FINDINGS,
    finding_code,
)
from ecg_dicom.results.uids import tracking_uid

#: Either kind of measurement group of the report.
MeasurementGroup = (
    hd.sr.MeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
)


def box_polyline(box: tuple[float, float, float, float], page: Page) -> np.ndarray:
    """The box as a closed POLYLINE (5 points, first = last) of (column, row)
    in annotated-SC pixels (PS3.3 C.18.6.1.1: SCOORD image coordinates)."""
    x0, y0, x1, y1 = to_sc_pixels(box, page)
    return np.array(
        [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float32
    )


def leads_under(
    box: tuple[float, float, float, float], page: Page
) -> list[tuple[str, float, float]]:
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
    # network (model.runtime "auto" depends on the machine), e.g. "runtime openvino-int8 int8";
    # then what the Probability is: "probability calibrated (platt 1a2b3c4d)" or
    # "probability uncalibrated" (the raw abnormal score: the weights have no calibration).
    # For a picture, what straightening did before the model read it ("straightening
    # rotation -7.02 deg", "straightening none").
    parameters = [f"runtime {result.runtime}"] if result.runtime else []
    if result.label != NOT_INTERPRETABLE:
        parameters.append(f"probability {result.probability_kind}")
    if result.straightening:
        parameters.append(f"straightening {result.straightening}")
    return hd.sr.AlgorithmIdentification(
        name=result.model_name, version=result.model_version, parameters=parameters or None
    )


def _probability(value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=PROBABILITY, value=float(min(max(value, 0.0), 1.0)), unit=NO_UNITS
    )


def summary_group(
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


def detection_group(
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
