"""What the web viewer lists: the ledger columns it filters on, and one filtered page.

The viewer (``/api/jobs``) shows every job with its patient, study, result and
delivery, newest received first, filtered by state, result label, received date,
origin and a text, a page at a time.  So that a page stays fast with 100,000 jobs
the ledger keeps what it filters on in columns of its own (added to older ledgers
when they are opened, see :data:`VIEWER_COLUMNS`), with indexes that serve each
filter in received order (:data:`VIEWER_INDEXES`), and pages are keyset pages:
"the 50 jobs received before (``received_at``, ``job_id``) of the last one shown",
never an OFFSET that reads every row before the page.

The columns are filled where the facts are known, so no caller has to:

* at receive: origin ("dicom" or "upload"), the patient's name and ID, the study
  date and description (from the header the listener reads anyway), the file
  name of an upload, and ``search`` (the texts ``q`` matches, case-folded);
* with a result (:meth:`JobLedger.update` given ``result``): the label, its
  probability and the detector's class (:func:`result_columns`);
* with a state or a reason: the delivery state (:func:`delivery_sql`) and the
  destination(s) named in the worker's reason (:func:`destinations_in`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

#: Columns the viewer reads and filters on, with their definitions (added to an older
#: ledger when opened; its rows are then filled from what they hold: :data:`BACKFILL`).
VIEWER_COLUMNS = {
    "origin": "TEXT NOT NULL DEFAULT 'dicom'",
    "patient_name": "TEXT NOT NULL DEFAULT ''",
    "patient_id": "TEXT NOT NULL DEFAULT ''",
    "study_date": "TEXT NOT NULL DEFAULT ''",
    "study_description": "TEXT NOT NULL DEFAULT ''",
    "filename": "TEXT NOT NULL DEFAULT ''",
    "label": "TEXT NOT NULL DEFAULT ''",
    "probability": "REAL",
    "class_name": "TEXT NOT NULL DEFAULT ''",
    "delivery": "TEXT NOT NULL DEFAULT ''",
    "destination": "TEXT NOT NULL DEFAULT ''",
    "search": "TEXT NOT NULL DEFAULT ''",
}

#: One index per filter, each in received order, so that a filtered page is read
#: from its index newest first and stops after ``limit`` rows.  The received-order
#: index carries ``search`` too: a text filter reads it (a few MB), not every row of
#: the table (each holds its result, about 1 KB).  Live updates (``updated_after``)
#: read ``jobs_updated`` (few rows changed since the last poll), then sort.
VIEWER_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_received_text ON jobs(received_at, job_id, search);
CREATE INDEX IF NOT EXISTS jobs_state_received ON jobs(state, received_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_label_received ON jobs(label, received_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_state_label_received ON jobs(state, label, received_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_origin_received ON jobs(origin, received_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(updated_at);
"""

#: Result labels as the ledger holds them ("" = no result yet, or none ever).
LABELS = ("Normal", "Abnormal", "Not interpretable")

_AE_AT = re.compile(r"([A-Za-z0-9_.\-]{1,16}@[A-Za-z0-9.\-]+:\d{1,5})")
_STOW = re.compile(r"STOW-RS at (\S+)")


def delivery_sql(state: str, reason: str) -> str:
    """The SQL expression of a job's delivery state, from SQL expressions of its
    state and reason (the new values of an UPDATE, or the columns themselves).

    "sent" (done and sent), "not sent" (done, no destination configured),
    "waiting" (its destination is unreachable, tried again later), "failed"
    (delivery failed for good), "" (nothing to deliver yet, skipped, an upload, or
    failed before delivery); while a job is being sent it keeps what it had.
    """
    return (
        f"CASE {state}"
        f" WHEN 'done' THEN CASE WHEN {reason} LIKE 'not sent%' THEN 'not sent'"
        f"  WHEN origin = 'upload' THEN '' ELSE 'sent' END"
        f" WHEN 'waiting' THEN 'waiting'"
        f" WHEN 'failed' THEN CASE WHEN {reason} LIKE 'send:%' THEN 'failed' ELSE '' END"
        f" WHEN 'delivering' THEN delivery"
        f" ELSE '' END"
    )


def destinations_in(reason: str) -> str:
    """The destinations a worker's reason names (``AE@host:port``, a STOW-RS URL),
    comma-separated, each once ("" when it names none)."""
    found = [*_AE_AT.findall(reason), *_STOW.findall(reason)]
    return ", ".join(dict.fromkeys(w.rstrip(";,)") for w in found))


def result_columns(result: dict[str, Any]) -> dict[str, Any]:
    """label, probability and class_name of a result dict (the worker's record)."""
    probability = result.get("probability")
    return {
        "label": str(result.get("label") or ""),
        "probability": float(probability) if isinstance(probability, int | float) else None,
        "class_name": str(result.get("class_name") or ""),
    }


def search_text(*parts: str) -> str:
    """What ``q`` is matched against: the parts case-folded, one per line (a person
    name's ``^`` separators as spaces)."""
    return "\n".join(normalized(p) for p in parts if p)


def normalized(text: str) -> str:
    """A text as :func:`search_text` stores it (case-folded, ``^`` as a space)."""
    return " ".join(text.replace("^", " ").split()).casefold()


#: Fill the viewer's columns of rows written before they existed: result, delivery
#: and search from what each row holds (see :func:`backfill`).
BACKFILL = (
    "UPDATE jobs SET"
    " label = COALESCE(json_extract(result, '$.label'), ''),"
    " probability = json_extract(result, '$.probability'),"
    " class_name = COALESCE(json_extract(result, '$.class_name'), '')"
    " WHERE result != '' AND json_valid(result)",
    f"UPDATE jobs SET delivery = {delivery_sql('state', 'reason')}",
    "UPDATE jobs SET search = lower(job_id || char(10) || calling_ae || char(10) ||"
    " study_instance_uid) WHERE search = ''",
)


def backfill(db: sqlite3.Connection) -> None:
    """Fill the viewer's columns of the rows of an earlier version's ledger (once, when
    the columns are added); patient and study stay empty (never recorded then)."""
    for statement in BACKFILL:
        db.execute(statement)
    rows = db.execute("SELECT job_id, reason FROM jobs WHERE reason LIKE '%@%'"
                      " OR reason LIKE '%STOW-RS%'").fetchall()
    db.executemany("UPDATE jobs SET destination=? WHERE job_id=?",
                   [(destinations_in(r[1]), r[0]) for r in rows])


@dataclass(frozen=True)
class JobQuery:
    """One page of the viewer's list: filters (None: any) and where the page starts."""

    state: str | None = None
    #: A label of :data:`LABELS`, or "" for jobs without a result.
    label: str | None = None
    #: Received at or after / before (epoch seconds).
    received_from: float | None = None
    received_to: float | None = None
    #: Matched (case-insensitive substring) against patient name and ID, calling AE,
    #: job id, Study Instance UID and an upload's file name.
    text: str = ""
    origin: str | None = None
    #: Only jobs changed after this (epoch seconds): the viewer's live updates.
    updated_after: float | None = None
    #: The (received_at, job_id) of the last job of the previous page.
    before: tuple[float, str] | None = None
    limit: int = 50

    def source(self) -> str:
        """The table as the query reads it: through ``jobs_updated`` for live updates
        (else SQLite walks the received-order index past every unchanged row)."""
        return " INDEXED BY jobs_updated" if self.updated_after is not None else ""

    def where(self, *, paged: bool) -> tuple[str, dict[str, Any]]:
        """The WHERE clause (with its named parameters) of the filters, and of the
        page start when ``paged``."""
        terms: list[str] = []
        args: dict[str, Any] = {}
        for column in ("state", "label", "origin"):
            value = getattr(self, column)
            if value is not None:
                terms.append(f"{column} = :{column}")
                args[column] = value
        if self.received_from is not None:
            terms.append("received_at >= :received_from")
            args["received_from"] = self.received_from
        if self.received_to is not None:
            terms.append("received_at < :received_to")
            args["received_to"] = self.received_to
        if self.updated_after is not None:
            terms.append("updated_at > :updated_after")
            args["updated_after"] = self.updated_after
        if self.text.strip():
            terms.append("instr(search, :text) > 0")
            args["text"] = normalized(self.text)
        if paged and self.before is not None:
            terms.append("(received_at, job_id) < (:before_at, :before_id)")
            args["before_at"], args["before_id"] = self.before
        return (" WHERE " + " AND ".join(terms)) if terms else "", args
