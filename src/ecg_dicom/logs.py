"""Log lines: JSON for a log collector, or one readable text line per event.

``logging.format`` chooses (``auto``: text when standard error is a terminal, JSON
otherwise; :func:`ecg_dicom.startup.json_logs`).  Both carry the same events:

* **JSON** (:class:`JsonFormatter`): one object per line -- ``time`` (UTC),
  ``level``, ``logger``, ``message``, the job context and the event's fields
  (``label``, ``class_name``, ``confidence``...), ``duration_s`` inside a job.
* **text** (:class:`TextFormatter`): ``2026-12-03 19:32:45 INFO  job 3f9c...
  STORESCU: classified label=Abnormal class_name="ECG HB" confidence=0.98 (5.4 s)``
  -- local time, level, the job id and calling AE title when the line belongs to a
  job, the message, its short fields, and the seconds since the job's work began.

The job context (job id, calling AE title, SOP Instance UID) is carried in context
variables, so every line logged while a job runs names the job without each call
passing it along.

Third-party libraries (pynetdicom, huey, highdicom, uvicorn, ultralytics, NNCF,
OpenVINO, torch) log at WARNING and above only (:data:`QUIET_LIBRARIES`); with
``logging.level: DEBUG`` everything is shown.

**No patient data above DEBUG.**  Log lines name jobs by their ids and UIDs, never
by patient: no call logs a patient's name, ID, birth date or accession number (the
audit trail, :mod:`ecg_dicom.audit`, is where patient IDs go).  As a guard, a field
named like one of those (:func:`is_phi_field`: ``patient_name``, ``PatientID``,
``birth_date``, ``accession_number``...) given as ``extra`` or in the log context is
written only at DEBUG; above it, it is replaced by ``"[removed: patient data]"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

#: Field names (lower case, without "_" and "'") that carry patient data.
PHI_FIELDS = frozenset({
    "patientname", "patientsname", "patientid", "otherpatientids", "patientbirthdate",
    "patientsbirthdate", "birthdate", "dateofbirth", "accessionnumber", "patientaddress",
    "patientsaddress", "patienttelephonenumbers", "patientstelephonenumbers",
})
REMOVED = "[removed: patient data]"


def is_phi_field(name: str) -> bool:
    """Whether a log field's name says it holds patient data."""
    return name.lower().replace("_", "").replace("'", "") in PHI_FIELDS


_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "ecg_dicom_log_context", default=None
)
#: When the innermost job context (one with a ``job_id``) was entered (monotonic s).
_job_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ecg_dicom_log_job_started", default=None
)
#: Libraries whose INFO lines are routine detail (one per PDU, per task, per copied
#: DICOM module, per export step): shown only at DEBUG.
QUIET_LIBRARIES = (
    "pynetdicom", "huey", "highdicom", "uvicorn", "uvicorn.error", "uvicorn.access",
    "ultralytics", "nncf", "openvino", "torch", "matplotlib", "PIL", "multipart",
    "python_multipart",
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (e.g. job_id, calling_ae, sop_instance_uid) to every line logged inside."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    started = _job_started.set(time.monotonic()) if fields.get("job_id") else None
    try:
        yield
    finally:
        if started is not None:
            _job_started.reset(started)
        _context.reset(token)


def _fields(record: logging.LogRecord, standard: set[str]) -> dict[str, Any]:
    """The context and the extras of a record, patient data removed above DEBUG."""
    entry: dict[str, Any] = dict(_context.get() or {})
    for key, value in vars(record).items():
        if key not in standard and not key.startswith("_") and key != "color_message":
            entry[key] = value
    started = _job_started.get()
    if started is not None and "job_id" in entry:
        entry["duration_s"] = round(time.monotonic() - started, 3)
    if record.levelno > logging.DEBUG:
        entry.update({k: REMOVED for k in entry if is_phi_field(k)})
    return entry


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, extras."""

    _standard = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record, self._standard))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One readable line per event (see the module's docstring); a traceback, when
    there is one, follows on its own lines."""

    _standard = JsonFormatter._standard
    #: Context fields said by the line's head, or too long for a readable line.
    _unsaid = frozenset({"job_id", "calling_ae", "sop_instance_uid", "duration_s"})

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record, self._standard)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        head = f"{stamp} {record.levelname:<7}"
        if "job_id" in fields:
            head += f" job {fields['job_id']}"
            if fields.get("calling_ae"):
                head += f" {fields['calling_ae']}"
            head += ":"
        parts = [head, record.getMessage()]
        if not record.name.startswith("ecg_dicom"):
            parts.insert(1, f"[{record.name}]")  # a library's own line says whose it is
        for key, value in fields.items():
            if key in self._unsaid or value is None or isinstance(value, (dict, list, tuple)):
                continue  # structures (the effective configuration...) are for JSON
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            parts.append(f"{key}={json.dumps(shown) if ' ' in shown else shown}")
        if "duration_s" in fields:
            parts.append(f"({fields['duration_s']:.1f} s)")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", json_format: bool = True) -> None:
    """Configure the root logger for the application (called once by the CLI): one
    handler on standard error, JSON or text; :data:`QUIET_LIBRARIES` at WARNING
    (unless ``level`` is DEBUG)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        library.setLevel(max(logging.WARNING, root.level) if root.level > logging.DEBUG
                         else logging.DEBUG)
