"""Structured JSON logs.

Every line is one JSON object.  The job context (job id, calling AE title,
SOP Instance UID) is carried in context variables, so every line logged while a
job runs names the job without each call passing it along.

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


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (e.g. job_id, calling_ae, sop_instance_uid) to every line logged inside."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


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
        entry.update(_context.get() or {})
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                entry[key] = value
        if record.levelno > logging.DEBUG:
            entry.update({k: REMOVED for k in entry if is_phi_field(k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", json_format: bool = True) -> None:
    """Configure the root logger for the application (called once by the CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pynetdicom is chatty at INFO (one line per PDU); keep its warnings.
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("huey").setLevel(max(logging.WARNING, root.level))
