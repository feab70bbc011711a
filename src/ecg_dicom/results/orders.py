"""The order an ECG was acquired for, carried into the results (PS3.3 C.17.2.1, C.7.3.1).

For an SC, the source's Request Attributes Sequence (0040,0275) goes into the
General Series module (C.7.3.1, type 3) as it is; for an SR, the Referenced
Request Sequence (0040,A370) of the SR Document General module (C.17.2.1, type
1C, "required if the document was requested") has one item per request the ECG
was acquired for (:func:`referenced_requests`): from each Request Attributes
item, or, without any, from the source's Accession Number.  Without an
accession number or request attributes nothing says the ECG was ordered, and
the sequence is left out.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from ecg_dicom.results.valid import copy_if_valid, is_empty, valid_element, valid_items

#: Keywords of a Referenced Request Sequence item (PS3.3 Table C.17-2) taken from a
#: Request Attributes item (PS3.3 Table 10-9) of the same name.
_REQUEST_KEYWORDS = (
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "ReasonForTheRequestedProcedure",
    "ReasonForRequestedProcedureCodeSequence",
)
#: Type 2 attributes of a Referenced Request Sequence item, present even when empty.
_REQUEST_TYPE2 = (
    "ReferencedStudySequence",
    "AccessionNumber",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
)


def referenced_requests(source: Dataset) -> list[Dataset]:
    """Referenced Request Sequence items (PS3.3 C.17.2.1) for the requests ``source``
    was acquired for: one per Request Attributes item, else one from the Accession
    Number; none when the source shows no request."""
    study_uid = source.StudyInstanceUID
    found: list[Dataset] = []
    for request in valid_items(source, "RequestAttributesSequence"):
        item = _request_item(study_uid)
        for keyword in _REQUEST_KEYWORDS:
            element = valid_element(request, keyword)
            if element is not None and not is_empty(element):
                item[element.tag] = element
        same_order = item.AccessionNumber == source.get("AccessionNumber", "")
        if not item.AccessionNumber:
            copy_if_valid(source, item, "AccessionNumber")
        if (same_order or not item.AccessionNumber) and (
            "IssuerOfAccessionNumberSequence" not in item
        ):
            copy_if_valid(source, item, "IssuerOfAccessionNumberSequence")
        if any(item.get(k) for k in ("AccessionNumber", "RequestedProcedureID")):
            found.append(item)
    if not found and str(source.get("AccessionNumber", "") or "").strip():
        item = _request_item(study_uid)
        copy_if_valid(source, item, "AccessionNumber")
        copy_if_valid(source, item, "IssuerOfAccessionNumberSequence")
        found.append(item)
    return found


def _request_item(study_uid: str) -> Dataset:
    item = Dataset()
    item.StudyInstanceUID = study_uid
    for keyword in _REQUEST_TYPE2:
        setattr(item, keyword, [] if keyword.endswith("Sequence") else "")
    return item
