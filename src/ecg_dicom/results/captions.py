"""What the annotated image says, in words: the decision, whose ECG, which model.

* the decision, large and bold, in words a reader understands ("Abnormal — Acute
  MI (probability 0.91)", "Normal (probability 0.97)", "Not interpretable:
  <reason>"): :func:`decision_line`;
* who and when: the patient's name and ID, birth date and study date/time
  (:func:`identity_line`), so a printed or exported picture still says whose ECG
  it is;
* a detector class as :data:`DISPLAY_NAMES` names it for people (the SR keeps the
  data set's names as the detector's classes), and the model version shortened
  to :data:`SHORT_VERSION_LENGTH` characters of its checksum.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.valuerep import PersonName

from ecg_dicom.records import ABNORMAL, NORMAL_CLASS, NOT_INTERPRETABLE, Classification

#: The notice on every annotated image.
BANNER_TEXT = "AI result — not for diagnostic use"
#: The reason given when the result has none: the model found nothing.
NO_BOX_REASON = "the model detected nothing on this page"
#: Class names for people; the SR keeps the data set's names as the detector's classes.
DISPLAY_NAMES: dict[str, str] = {
    "ECG HB": "Abnormal heartbeat",
    "History_MI": "History of MI",
    "MI-ECG": "Acute MI",
    "Normal-ECG": "Normal",
}
#: Number of characters of the model version (a hex checksum) shown on the image.
SHORT_VERSION_LENGTH = 12


def short_version(model_version: str) -> str:
    """The first characters of the model version (a SHA-256 in practice)."""
    return model_version[:SHORT_VERSION_LENGTH]


def display_name(class_name: str) -> str:
    """A detector class as a reader understands it (:data:`DISPLAY_NAMES`)."""
    return DISPLAY_NAMES.get(class_name, class_name)


def is_not_interpretable(result: Classification) -> bool:
    """Whether ``result`` states no finding (the image then says why)."""
    return result.label == NOT_INTERPRETABLE or result.probability is None


def _abnormal_class(result: Classification) -> str | None:
    abnormal = [d for d in result.decisive if d.class_name != NORMAL_CLASS]
    if abnormal:
        return max(abnormal, key=lambda d: d.confidence).class_name
    if result.class_name and result.class_name != NORMAL_CLASS:
        return result.class_name
    return None


def decision_line(result: Classification) -> str:
    """The decision in words, as drawn large at the top of the image."""
    if is_not_interpretable(result):
        return f"{NOT_INTERPRETABLE}: {result.reason.strip() or NO_BOX_REASON}"
    suffix = f" (probability {result.probability:.2f})"
    if result.label == ABNORMAL:
        cls = _abnormal_class(result)
        named = f" — {display_name(cls)}" if cls else ""
        return f"Abnormal{named}{suffix}"
    return f"Normal{suffix}"


def person_name_text(name: object) -> str:
    """A Patient's Name (PN) for people: "FAMILY, Given Middle", each component
    group (alphabetic, ideographic; PS3.5 6.2.1.2) shown, ideographic in brackets."""
    pn = name if isinstance(name, PersonName) else PersonName(str(name or ""))
    groups = [g for g in (pn.alphabetic, pn.ideographic) if g]
    texts = []
    for index, group in enumerate(groups):
        family, given, middle, prefix, suffix = (group.split("^") + [""] * 5)[:5]
        first = " ".join(p for p in (prefix, given, middle) if p)
        joiner = ", " if index == 0 and not _is_cjk(group) else " "
        text = joiner.join(p for p in (family, first) if p)
        texts.append(f"{text} {suffix}".strip())
    if len(texts) > 1:
        return f"{texts[0]} ({texts[1]})"
    return texts[0] if texts else ""


def _is_cjk(text: str) -> bool:
    return any(ord(c) >= 0x2E80 for c in text)


def _date(value: object) -> str:
    text = str(value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else text


def _time(value: object) -> str:
    text = str(value or "").strip()
    return f"{text[:2]}:{text[2:4]}" if len(text) >= 4 and text[:4].isdigit() else ""


def identity_line(source: Dataset) -> str:
    """Whose ECG and when, as drawn under the decision: Patient's Name, Patient ID,
    Patient's Birth Date and Study Date/Time of ``source`` (those it has)."""
    parts = []
    name = person_name_text(source.get("PatientName", ""))
    if name:
        parts.append(f"Patient: {name}")
    if str(source.get("PatientID", "") or "").strip():
        parts.append(f"ID: {str(source.PatientID).strip()}")
    if source.get("PatientBirthDate"):
        parts.append(f"Born: {_date(source.PatientBirthDate)}")
    if source.get("StudyDate"):
        when = f"{_date(source.StudyDate)} {_time(source.get('StudyTime'))}".strip()
        parts.append(f"Study: {when}")
    return "    ".join(parts)
