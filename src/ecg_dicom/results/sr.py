"""Build the Structured Report: the machine-readable AI result (PS3.16 TID 1500).

A Comprehensive 3D SR (PS3.3 A.35.13) holding a TID 1500 "Imaging Measurement
Report" (126000, DCM), built with highdicom's templates, never by hand:

* Observation context (TID 1001/1004): a **device** observer, the algorithm, with
  Device Observer UID (stable per model name and version, see uids.py), Name,
  Manufacturer and Model Name.
* The measurement groups: one summary group, then one per decisive box
  (:mod:`ecg_dicom.results.measurements`), coded with
  :mod:`ecg_dicom.results.codes`; Procedure Reported per input
  (:func:`ecg_dicom.results.codes.procedure_reported`).
* Contributing Equipment (PS3.3 C.12.1): the source device as (109101, DCM,
  "Acquisition Equipment"), highdicom, and ecg-dicom as (Newcode1, 99IHE,
  "Processing Algorithm") (:mod:`ecg_dicom.results.equipment`).
* Evidence (PS3.3 C.17.2.2): the source ECG and the SC, both in the study, in
  Current Requested Procedure Evidence.  For waveform sources this is the
  waveform's reference: the ECG object itself is evidence.
* Predecessor Documents Sequence (PS3.3 C.17.2.3) when the SR replaces a delivered
  one (:func:`predecessor_documents`; see build.py).

VerificationFlag UNVERIFIED (no person has checked it), CompletionFlag COMPLETE,
PreliminaryFlag PRELIMINARY: an AI result awaiting a physician's read.
"""

from __future__ import annotations

import warnings

import highdicom as hd
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes

from ecg_dicom.config import Settings
from ecg_dicom.records import NOT_INTERPRETABLE, Classification, DocumentReference, Page
from ecg_dicom.results.codes import LABEL_CODES, procedure_reported
from ecg_dicom.results.context import copy_context
from ecg_dicom.results.equipment import (
    add_contributing_equipment,
    algorithm_equipment,
    set_source_equipment,
)
from ecg_dicom.results.measurements import MeasurementGroup, detection_group, summary_group
from ecg_dicom.results.uids import ResultUIDs, device_observer_uid, uids_for

#: Series Description of every SR (LO: at most 64 characters).
SR_SERIES_DESCRIPTION = "AI result - ECG classification - not for diagnostic use"


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
    source: Dataset, sc: Dataset, page: Page, result: Classification, settings: Settings, *,
    uids: ResultUIDs | None = None, series_number: int | None = None,
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
        uids = uids_for(source, page, result, settings)
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_observer_uid(result.model_name, result.model_version, out.uid_root),
            name=result.model_name[:64],
            manufacturer_name=out.manufacturer[:64],
            model_name=result.model_name[:64],
        ),
    )
    groups: list[MeasurementGroup] = [summary_group(sc, result, uids.sr_sop, out.uid_root)]
    decisive = result.decisive
    for index, det in enumerate(result.detections, start=1):
        if det in decisive:  # only the boxes that count for the decision are findings
            groups.append(
                detection_group(index, det, sc, page, result, uids.sr_sop, out.uid_root)
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
