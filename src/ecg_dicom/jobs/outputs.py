"""The result history in the ledger: what each source ECG got, one row per (study, instance).

``slot`` is the ECG's place among the ECGs of its study (it chooses the results'
Series Numbers); ``built_sr`` the SOP Instance UID of the SR last delivered as
built, ``sent_sr`` where that SR is at the PACS (JSON: study/series/class/instance;
the class may be a fallback), ``replaced_sr`` the SR it replaced (JSON, or empty).
A later result with other content names the delivered SR as its predecessor.
"""

from __future__ import annotations

import dataclasses
import json
import time

from ecg_dicom.jobs.ledger import LedgerConnection
from ecg_dicom.records import DocumentReference, ResultHistory

OUTPUTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    study_instance_uid TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    slot INTEGER NOT NULL,
    built_sr TEXT NOT NULL DEFAULT '',
    sent_sr TEXT NOT NULL DEFAULT '',
    replaced_sr TEXT NOT NULL DEFAULT '',
    job_id TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (study_instance_uid, sop_instance_uid),
    UNIQUE (study_instance_uid, slot)
);
"""


class OutputsLedger(LedgerConnection):
    """The ``outputs`` table: series slots and the SR each ECG was delivered with."""

    def series_slot(self, study_instance_uid: str, sop_instance_uid: str) -> int:
        """The ECG's place among the ECGs of its study (0, 1, ...), given once and kept.

        One INSERT ... SELECT is atomic in SQLite (writers are serialised), so two
        workers taking ECGs of the same study at once get different slots.
        """
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO outputs (study_instance_uid, sop_instance_uid, slot,"
                " updated_at) SELECT ?, ?, COALESCE(MAX(slot) + 1, 0), ? FROM outputs"
                " WHERE study_instance_uid=?",
                (study_instance_uid, sop_instance_uid, time.time(), study_instance_uid),
            )
            row = db.execute(
                "SELECT slot FROM outputs WHERE study_instance_uid=? AND sop_instance_uid=?",
                (study_instance_uid, sop_instance_uid),
            ).fetchone()
        return int(row[0])

    def result_history(
        self, study_instance_uid: str, sop_instance_uid: str
    ) -> ResultHistory | None:
        """What an ECG's last delivered result was (None when nothing was delivered yet)."""
        with self._db() as db:
            row = db.execute(
                "SELECT built_sr, sent_sr, replaced_sr FROM outputs"
                " WHERE study_instance_uid=? AND sop_instance_uid=? AND built_sr!=''",
                (study_instance_uid, sop_instance_uid),
            ).fetchone()
        if row is None:
            return None
        return ResultHistory(
            built_sr=row[0],
            sent=DocumentReference(**json.loads(row[1])),
            replaced=DocumentReference(**json.loads(row[2])) if row[2] else None,
        )

    def record_result(
        self,
        study_instance_uid: str,
        sop_instance_uid: str,
        history: ResultHistory,
        job_id: str,
    ) -> None:
        """Remember the result an ECG was delivered with (see :meth:`result_history`)."""
        self.series_slot(study_instance_uid, sop_instance_uid)
        replaced = json.dumps(dataclasses.asdict(history.replaced)) if history.replaced else ""
        with self._db() as db:
            db.execute(
                "UPDATE outputs SET built_sr=?, sent_sr=?, replaced_sr=?, job_id=?, updated_at=?"
                " WHERE study_instance_uid=? AND sop_instance_uid=?",
                (history.built_sr, json.dumps(dataclasses.asdict(history.sent)), replaced, job_id,
                 time.time(), study_instance_uid, sop_instance_uid),
            )
