"""The coded vocabulary of the SR (PS3.16; pydicom 3's concept dictionary).

* Finding (121071, DCM) and Probability (122157, DCM, unit "1", UCUM no units)
  of the summary and of each decisive box; the overall result is Normal (SCT
  164854000) or Abnormal ECG (SCT 102594003), both from CID 3677 "Summary Codes
  ECG" (:data:`LABEL_CODES`); each detector class has its Finding
  (:data:`FINDING_CODES`, :func:`finding_code`).
* The qualitative evaluations: "CAD Processing and Findings Summary" (111017,
  DCM) = "All algorithms succeeded; with findings" (111242) or, for a
  not-interpretable input, (111245, DCM, "No algorithms succeeded; without
  findings") (CID 6047), "Impression" (121073, DCM), and "Comment" (121106, DCM)
  for the reason in text (CID 12101).
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
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.sr.coding import Code

from ecg_dicom.records import ABNORMAL, NORMAL, STANDARD_LEADS, Label, Page
from ecg_dicom.sop import (
    AMBULATORY_ECG,
    HEMODYNAMIC_WAVEFORM,
    TWELVE_LEAD_ECG,
    WAVEFORM_SOP_CLASSES,
)

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
LABEL_CODES: dict[Label, Code] = {NORMAL: NORMAL_ECG, ABNORMAL: ABNORMAL_ECG}
#: The Finding of each detector class.  "ECG HB" is the data set's "abnormal
#: heartbeat" folder: coded as an arrhythmia, not as an AV block of unknown degree.
FINDING_CODES: dict[str, Code] = {
    "MI-ECG": Code("57054005", "SCT", "Acute myocardial infarction"),
    "History_MI": Code("399211009", "SCT", "History of Myocardial Infarction"),
    "ECG HB": Code("698247007", "SCT", "Cardiac Arrhythmia"),
    "Normal-ECG": NORMAL_ECG,
}


def finding_code(class_name: str) -> Code:
    """The coded Finding of a detector class; unknown classes are refused (strict writing)."""
    try:
        return FINDING_CODES[class_name]
    except KeyError:
        raise ValueError(
            f"detector class {class_name!r} has no code: "
            "add it to ecg_dicom.results.codes.FINDING_CODES"
        ) from None


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
