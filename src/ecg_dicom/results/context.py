"""Carry the ECG's identity and order context into the results (SR and SC).

highdicom builds the SC (``SCImage.from_ref_dataset``) and the SR (its
constructor copies from the first evidence item, our SC) with only the
attributes its constructors name: Patient's Name, ID, Birth Date and Sex; Study
Instance UID, Date, Time, ID, Accession Number and Referring Physician's Name;
Specific Character Set.  A PACS, a RIS and a worklist match results to the
patient and the order on more than that, so :func:`copy_context` completes a
built object from the source ECG:

* **Patient** module (PS3.3 C.7.1.1): Issuer of Patient ID (0010,0021), Issuer
  of Patient ID Qualifiers Sequence (0010,0024), Other Patient IDs Sequence
  (0010,1002) -- the patient ID means nothing without the domain that issued it.
* **Patient Study** module (C.7.2.2): Patient's Age, Size, Weight.
* **General Study** module (C.7.2.1): Study Description, Issuer of Accession
  Number Sequence (0008,0051), Referring Physician Identification Sequence,
  and the type 2 attributes highdicom already copies (Accession Number, Study
  ID/Date/Time, Referring Physician's Name), re-copied so both outputs say
  exactly what the source says.
* **SOP Common** module (C.12.1): Timezone Offset From UTC (0008,0201), the
  build's own date/times converted into it (:mod:`ecg_dicom.results.timezone`).
* **Request context**: the SC's Request Attributes Sequence, the SR's Referenced
  Request Sequence (:mod:`ecg_dicom.results.orders`).
* **Specific Character Set** (0008,0005, C.12.1.1.2): the source's, or UTF-8
  when a value needs it (:mod:`ecg_dicom.results.charset`).

Strict writing: a value copied from the sender that is not valid for its VR
(e.g. Patient's Age "45" rather than "045Y", PS3.5 6.2) is left out and logged,
never copied into our object (:mod:`ecg_dicom.results.valid`).
"""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from ecg_dicom.results.charset import declare_character_set
from ecg_dicom.results.orders import referenced_requests
from ecg_dicom.results.timezone import copy_timezone
from ecg_dicom.results.valid import is_empty, valid_element
from ecg_dicom.sop import SR_MODALITY

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.context")

#: Attributes copied as they are when the source has a value (module, keyword).
COPIED: tuple[tuple[str, str], ...] = (
    ("Patient C.7.1.1", "IssuerOfPatientID"),
    ("Patient C.7.1.1", "IssuerOfPatientIDQualifiersSequence"),
    ("Patient C.7.1.1", "OtherPatientIDsSequence"),
    ("Patient Study C.7.2.2", "PatientAge"),
    ("Patient Study C.7.2.2", "PatientSize"),
    ("Patient Study C.7.2.2", "PatientWeight"),
    ("General Study C.7.2.1", "StudyDescription"),
    ("General Study C.7.2.1", "AccessionNumber"),
    ("General Study C.7.2.1", "IssuerOfAccessionNumberSequence"),
    ("General Study C.7.2.1", "ReferringPhysicianName"),
    ("General Study C.7.2.1", "ReferringPhysicianIdentificationSequence"),
    ("General Study C.7.2.1", "StudyID"),
    ("General Study C.7.2.1", "StudyDate"),
    ("General Study C.7.2.1", "StudyTime"),
)


def copy_context(source: Dataset, target: Dataset) -> None:
    """Complete ``target`` (an SC or SR built from ``source``) with the source's
    identity and order context; see the module docstring for what and why.

    Idempotent: calling it twice leaves the same object.
    """
    for module, keyword in COPIED:
        if keyword not in source or is_empty(source[keyword]):
            continue
        element = valid_element(source, keyword)
        if element is not None:
            target[element.tag] = element
        else:
            log.warning(
                "%s (%s module) of the source is not valid DICOM: not copied", keyword, module
            )
    copy_timezone(source, target)
    if target.get("Modality") == SR_MODALITY:
        requests = referenced_requests(source)
        if requests:
            target.ReferencedRequestSequence = DicomSequence(requests)
    else:
        requests_element = valid_element(source, "RequestAttributesSequence")
        if requests_element is not None and not is_empty(requests_element):
            target[requests_element.tag] = requests_element
    declare_character_set(source, target)
