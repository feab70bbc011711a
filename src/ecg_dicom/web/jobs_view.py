"""A job as the viewer and the HTTP API show it: the summary of a list row, and the
details of a job page (the SR as a tree, the cart's own statements).

* :func:`summary` - one ledger row in words (``JobSummary`` of docs/viewer.md):
  patient name readable ("DOE, JOHN"), study date ISO, the class in human words
  beside the data set's name, the delivery and where it goes;
* :func:`sr_tree` - the kept SR's content tree as nested ``{name, value, children}``;
* :func:`statements` - the interpretation text the cart wrote into the ECG
  (Waveform Annotation Sequence: unformatted text and coded statements);
* :func:`parse_cursor` / :func:`cursor` - the keyset cursor of ``/api/jobs``
  (``received_at`` and ``job_id`` of the last row, received_at as ``repr`` so it
  compares exactly).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread

from ecg_dicom.config import Settings
from ecg_dicom.dicom import destinations_for
from ecg_dicom.jobs import Job, JobState
from ecg_dicom.results import DISPLAY_NAMES
from ecg_dicom.sop import sop_class_name

#: The label filter of ``/api/jobs`` -> the label in the ledger ("" = no result).
LABEL_FILTERS = {
    "normal": "Normal", "abnormal": "Abnormal", "not-interpretable": "Not interpretable",
    "none": "",
}
#: How deep an SR content tree is followed (ours is 4 levels; a guard, not a limit).
MAX_TREE_DEPTH = 12


def person_name(value: str) -> str:
    """A DICOM Person Name as people write it: "DOE^JOHN^A" -> "DOE, JOHN A"."""
    family, _, rest = value.split("=")[0].partition("^")
    given = " ".join(p for p in rest.split("^")[:2] if p.strip())
    family, given = family.strip(), given.strip()
    return f"{family}, {given}" if family and given else family or given


def iso_date(value: str) -> str:
    """A DICOM DA (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def modality_name(job: Job) -> str:
    """What kind of object it is, in words ("12-lead ECG waveform", "PNG image")."""
    if not job.sop_class_uid:
        suffix = Path(job.filename).suffix.lower().lstrip(".")
        return {"png": "PNG image", "jpg": "JPEG image", "jpeg": "JPEG image",
                "pdf": "PDF document"}.get(suffix, "uploaded file")
    name = sop_class_name(job.sop_class_uid).removesuffix(" Storage")
    return name.replace(" Waveform", " waveform").replace(" Image", " image")


def summary(job: Job, settings: Settings) -> dict[str, Any]:
    """One row of the list (``JobSummary``)."""
    destination = job.destination
    if not destination and job.origin == "dicom" and job.state not in (
        JobState.DONE, JobState.SKIPPED
    ):  # not sent yet: where it will go, as configured now
        destination = ", ".join(d.where for d in destinations_for(job.calling_ae, settings))
    return {
        "job_id": job.job_id,
        "state": str(job.state),
        "origin": job.origin,
        "received_at": job.received_at,
        "updated_at": job.updated_at,
        "patient_name": person_name(job.patient_name),
        "patient_id": job.patient_id,
        "study_date": iso_date(job.study_date),
        "study_description": job.study_description,
        "calling_ae": job.calling_ae,
        "sop_class_uid": job.sop_class_uid,
        "modality_name": modality_name(job),
        "label": job.label,
        "probability": job.probability,
        "class_name": job.class_name,
        "class_display": DISPLAY_NAMES.get(job.class_name, job.class_name),
        "delivery": job.delivery,
        "destination": destination,
        "reason": job.reason,
        "filename": job.filename,
    }


def cursor(position: tuple[float, str] | None) -> str | None:
    """The ``next`` cursor of a page (None: the last page)."""
    return None if position is None else f"{position[0]!r}_{position[1]}"


def parse_cursor(text: str) -> tuple[float, str]:
    """A cursor back to (received_at, job_id); ValueError when it is not one."""
    at, sep, job_id = text.partition("_")
    if not sep or not job_id.isalnum() or len(job_id) > 64:
        raise ValueError("not a cursor of /api/jobs")
    value = float(at)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a cursor of /api/jobs")
    return value, job_id


def day_start(text: str, *, after: bool = False) -> float:
    """Epoch seconds of local midnight starting YYYY-MM-DD (``after``: of the next day).

    The day is the service's local day, as the viewer shows received times."""
    day = datetime.date.fromisoformat(text)
    if after:
        day += datetime.timedelta(days=1)
    return datetime.datetime(day.year, day.month, day.day).timestamp()


# -- the SR -----------------------------------------------------------------------
def _meaning(item: Dataset, keyword: str) -> str:
    codes = item.get(keyword) or []
    return str(codes[0].get("CodeMeaning", "")) if codes else ""


def _value(item: Dataset) -> str:
    kind = str(item.get("ValueType", ""))
    if kind == "TEXT":
        return str(item.get("TextValue", ""))
    if kind == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if kind == "NUM":
        measured = (item.get("MeasuredValueSequence") or [Dataset()])[0]
        unit = _meaning(measured, "MeasurementUnitsCodeSequence")
        number = str(measured.get("NumericValue", "")).strip()
        return f"{number} {unit}".strip() if unit not in ("", "no units") else number
    if kind in ("DATETIME", "DATE", "TIME", "UIDREF", "PNAME"):
        keyword = {"DATETIME": "DateTime", "DATE": "Date", "TIME": "Time", "UIDREF": "UID",
                   "PNAME": "PersonName"}[kind]
        return str(item.get(keyword, ""))
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        refs = item.get("ReferencedSOPSequence") or [Dataset()]
        return (f"{sop_class_name(str(refs[0].get('ReferencedSOPClassUID', '')))} "
                f"{refs[0].get('ReferencedSOPInstanceUID', '')}").strip()
    if kind == "SCOORD":
        return f"{item.get('GraphicType', '')} ({len(item.get('GraphicData') or [])} values)"
    return ""


def _node(item: Dataset, depth: int) -> dict[str, Any]:
    children = item.get("ContentSequence") or [] if depth < MAX_TREE_DEPTH else []
    return {
        "name": _meaning(item, "ConceptNameCodeSequence"),
        "value": _value(item),
        "type": str(item.get("ValueType", "")),
        "children": [_node(child, depth + 1) for child in children],
    }


def sr_tree(path: Path) -> dict[str, Any]:
    """The content of an SR file as a tree: the document title, then its items."""
    return _node(dcmread(path), 0)


def statements(path: Path) -> list[str]:
    """The cart's own interpretation (unformatted text and coded statements of the
    Waveform Annotation Sequence), each once, in the cart's order."""
    ds = dcmread(path, specific_tags=["WaveformAnnotationSequence"], defer_size=1024)
    found: list[str] = []
    for item in ds.get("WaveformAnnotationSequence") or []:
        text = str(item.get("UnformattedTextValue", "") or "").strip()
        if not text and item.get("ConceptCodeSequence") and item.get("NumericValue") is None:
            text = _meaning(item, "ConceptCodeSequence").strip()
        if text:
            found.append(text)
    return list(dict.fromkeys(found))
