"""Header text of a rendered ECG page: who, when, how it was recorded, what the cart said.

Drawn outside the chart frame (see render.py).  Lines come from the patient,
study and acquisition attributes and from the Waveform Annotation Sequence
(PS3.3 C.10.10: the cart's own measurements and coded or free-text statements).
Each line is cut to ``limits.max_text_chars`` (``max_chars``) with an ellipsis;
the page then cuts it to the width it has (render.fit_text).
"""

from __future__ import annotations

import unicodedata

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ecg_dicom.pages.limits import DEFAULT_LIMITS, clip_text
from ecg_dicom.pages.multiplex import MultiplexGroup


def ascii_text(value: object) -> str:
    """Printable ASCII for the page (OpenCV Hershey fonts have no accents)."""
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode("ascii")
    return " ".join(text.replace("^", " ").split())


def _date(value: object) -> str:
    s = str(value or "")
    return f"{s[0:4]}-{s[4:6]}-{s[6:8]}" if len(s) >= 8 and s[:8].isdigit() else s


def _time(value: object) -> str:
    s = str(value or "")
    return f"{s[0:2]}:{s[2:4]}:{s[4:6]}" if len(s) >= 6 and s[:6].isdigit() else s


def _number(value: object) -> float | None:
    """A DS/IS value (or the first of several) as float; None when absent or invalid."""
    try:
        if isinstance(value, MultiValue):
            value = value[0] if len(value) else None
        return None if value in (None, "") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _filters(ds: Dataset, group: MultiplexGroup) -> str:
    """"Filters 0.05-150 Hz, notch 50 Hz" from the first channel's definition."""
    first = (ds.WaveformSequence[group.index].get("ChannelDefinitionSequence") or [Dataset()])[0]
    low, high = _number(first.get("FilterLowFrequency")), _number(first.get("FilterHighFrequency"))
    notch = _number(first.get("NotchFilterFrequency"))
    parts = [f"{low or 0:g}-{high or 0:g} Hz"] if low is not None or high is not None else []
    parts += [f"notch {notch:g} Hz"] if notch else []
    return ("Filters " + ", ".join(parts)) if parts else ""


def annotation_lines(ds: Dataset) -> tuple[str, ...]:
    """The cart's global measurements (four per line), then its statements (PS3.3 C.10.10).

    Statements are Unformatted Text Value items; measurements are Numeric
    Value items named by Concept Name Code Sequence without a Temporal Range
    Type (fiducial points such as "QRS onset" have one).  Header text is
    best effort: an unreadable item is left out, it never fails the page.
    """
    statements: list[str] = []
    measurements: list[str] = []
    for item in ds.get("WaveformAnnotationSequence") or []:
        if item.get("UnformattedTextValue"):
            statements.append(ascii_text(item.UnformattedTextValue))
            continue
        number, names = _number(item.get("NumericValue")), item.get("ConceptNameCodeSequence")
        if number is None or not names or item.get("TemporalRangeType"):
            continue
        units = item.get("MeasurementUnitsCodeSequence")
        unit = str(units[0].get("CodeValue", "")) if units else ""
        unit = {"{H.B.}/min": "bpm", "{beats}/min": "bpm"}.get(unit, unit)
        meaning = ascii_text(names[0].get("CodeMeaning", "?"))
        measurements.append(f"{meaning} {number:g} {unit}".strip())
    lines = [", ".join(measurements[i:i + 4]) for i in range(0, len(measurements), 4)]
    return tuple(lines + statements)


def header_lines(
    ds: Dataset, group: MultiplexGroup, n_leads: int, *, hemodynamic: bool,
    max_chars: int = DEFAULT_LIMITS.max_text_chars,
) -> tuple[str, ...]:
    """Header lines for the page: patient, acquisition, settings, then the cart's output.

    ``hemodynamic``: the object is a Hemodynamic Waveform, of which only the ECG
    channels are drawn (the page says so)."""
    def joined(*parts: str) -> str:
        return "  ".join(p for p in parts if p and not p.endswith(": "))

    acquired = str(ds.get("AcquisitionDateTime", "") or "")
    when = (f"{_date(acquired[:8])} {_time(acquired[8:14])}" if acquired else
            f"{_date(ds.get('StudyDate', ''))} {_time(ds.get('StudyTime', ''))}".strip())
    lines = [
        joined(f"Name: {ascii_text(ds.get('PatientName', '') or '-')}",
               f"ID: {ascii_text(ds.get('PatientID', '') or '-')}",
               f"Sex: {ascii_text(ds.get('PatientSex', '') or '')}",
               f"Born: {_date(ds.get('PatientBirthDate', ''))}",
               f"Age: {ascii_text(ds.get('PatientAge', '') or '')}"),
        joined(f"Acquired: {when or '-'}", ascii_text(ds.get("InstitutionName", "") or ""),
               ascii_text(f"{ds.get('Manufacturer', '') or ''} "
                          f"{ds.get('ManufacturerModelName', '') or ''}")),
        joined("25 mm/s", "10 mm/mV", f"{group.sampling_frequency:g} Hz",
               f"{group.duration:.1f} s", f"{n_leads} leads", _filters(ds, group)),
    ]
    if hemodynamic:
        lines.append("Hemodynamic waveform: ECG channels only")
    return tuple(clip_text(line, max_chars) for line in (*lines, *annotation_lines(ds)))
