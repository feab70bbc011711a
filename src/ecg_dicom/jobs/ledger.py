"""The job ledger: one row per acknowledged object in ``ledger.sqlite3``, and its states.

A row is written (and committed with ``synchronous=FULL``) only after the object's
file is durable, and the C-STORE is acknowledged only after the row.  State changes
are single UPDATE statements, so a job is claimed by exactly one worker
(:meth:`JobLedger.claim`); on start-up every job that is not ``done``, ``failed`` or
``skipped`` is queued again (:meth:`JobLedger.recover`).  The states and their
strings: :class:`~ecg_dicom.jobs.state.JobState`.

A job ``waiting`` for its destination keeps its schedule here, not in the queue:
``waiting_since`` (the first failed attempt; the retry window counts from it) and
``next_attempt_at``.  The queue's message is only a reminder: a lost one (a Redis
outage or FLUSHALL, a crash) is made again from the ledger
(:meth:`JobLedger.due_for_queue`, :func:`ecg_dicom.jobs.retry.requeue_lost`).
Ledgers written before these two columns existed gain them when opened.

The web viewer's columns (origin, patient and study, result label, delivery,
destination; :mod:`ecg_dicom.jobs.listing`) are filled here too: at receive from the
:class:`Arrival`, and by :meth:`JobLedger.update` from the result and the reason it
is given, so the worker records them without knowing they exist.  :meth:`JobLedger.page`
reads one filtered keyset page of them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecg_dicom.errors import StorageError
from ecg_dicom.jobs.listing import (
    VIEWER_COLUMNS,
    VIEWER_INDEXES,
    JobQuery,
    backfill,
    delivery_sql,
    destinations_in,
    result_columns,
    search_text,
)
from ecg_dicom.jobs.rows import Arrival, Job
from ecg_dicom.jobs.state import JobState

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL DEFAULT '',
    calling_ae TEXT NOT NULL DEFAULT '',
    peer_address TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    waiting_since REAL NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_sop ON jobs(sop_instance_uid);
"""

#: Columns added after v0.1, with their definition: added to an older ledger when opened.
_ADDED_COLUMNS = {
    "waiting_since": "REAL NOT NULL DEFAULT 0",
    "next_attempt_at": "REAL NOT NULL DEFAULT 0",
    **VIEWER_COLUMNS,
}

#: The columns :meth:`JobLedger.update` may set.
_UPDATABLE = frozenset({
    "state", "reason", "attempts", "delivery_attempts", "result", "waiting_since",
    "next_attempt_at",
})


class LedgerConnection:
    """Per-thread connections to ``ledger.sqlite3`` (WAL; ``synchronous=FULL`` with fsync)."""

    def __init__(self, ledger_path: Path, *, fsync: bool, schemas: Iterable[str]) -> None:
        self.ledger_path = ledger_path
        self._synchronous = "FULL" if fsync else "OFF"
        self._local = threading.local()
        with self._db() as db:
            for schema in schemas:
                db.executescript(schema)
            self._upgrade(db)

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Bring a ledger written by an earlier version up to date (nothing here)."""

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection to the ledger (opened once per thread)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.ledger_path, timeout=30.0, isolation_level=None, check_same_thread=True
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.row_factory = sqlite3.Row
            self._local.db = db
        yield db


class JobLedger(LedgerConnection):
    """The ``jobs`` table: recording, claiming, updating and listing jobs."""

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Add the columns a ledger of an earlier version lacks (its rows keep their
        values; the new columns start at 0)."""
        super()._upgrade(db)
        have = {r[1] for r in db.execute("PRAGMA table_info(jobs)").fetchall()}
        for name, definition in _ADDED_COLUMNS.items():
            if name in have:
                continue
            try:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise
        db.executescript(VIEWER_INDEXES)
        if "search" not in have:  # rows of an earlier version: fill the viewer's columns
            backfill(db)

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        data.pop("search", None)
        data["state"] = JobState(data["state"])
        data["result"] = json.loads(data["result"]) if data["result"] else {}
        return Job(**data)

    def _insert(self, job_id: str, state: JobState, arrival: Arrival, reason: str = "",
                result: dict[str, Any] | None = None) -> None:
        now = time.time()
        a = arrival
        row: dict[str, Any] = {
            "job_id": job_id, "state": state, "sop_class_uid": a.sop_class_uid,
            "sop_instance_uid": a.sop_instance_uid, "study_instance_uid": a.study_instance_uid,
            "calling_ae": a.calling_ae, "peer_address": a.peer_address, "size": a.size,
            "reason": reason, "received_at": now, "updated_at": now, "origin": a.origin,
            "patient_name": a.patient_name, "patient_id": a.patient_id,
            "study_date": a.study_date, "study_description": a.study_description,
            "filename": a.filename,
            "search": search_text(a.patient_name, a.patient_id, a.calling_ae, job_id,
                                  a.study_instance_uid, a.filename),
        }
        if result:
            row.update(result_columns(result), result=json.dumps(result))
        try:
            with self._db() as db:
                db.execute(
                    f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
        except sqlite3.Error as exc:
            raise StorageError(f"could not record {state} instance in the ledger: {exc}") from exc

    def record_received(self, job_id: str, arrival: Arrival) -> None:
        """Record an instance whose file is durable; committed before the C-STORE answers."""
        self._insert(job_id, JobState.RECEIVED, arrival)

    def record_skipped(self, job_id: str, arrival: Arrival, reason: str) -> None:
        """Record an acknowledged object that will not be processed, with the reason.

        No file is kept for it (the caller discards the received bytes); ``size``
        records how many bytes arrived.  Committed before the C-STORE answers.
        """
        self._insert(job_id, JobState.SKIPPED, arrival, reason)

    def record_upload(self, job_id: str, arrival: Arrival, state: JobState, reason: str,
                      result: dict[str, Any] | None) -> None:
        """Record an upload classified in its request (``done`` with its result, or
        ``failed`` with the reason): never queued, never delivered."""
        self._insert(job_id, state, arrival, reason, result)

    def claim(
        self, job_id: str, from_states: tuple[JobState, ...], to_state: JobState
    ) -> Job | None:
        """Atomically move a job from one of ``from_states`` to ``to_state``.

        Returns the job, or ``None`` when it is not in one of those states (for
        example a duplicate queue message for a job already done).
        """
        marks = ",".join("?" * len(from_states))
        with self._db() as db:
            cur = db.execute(
                f"UPDATE jobs SET state=?1, updated_at=?2, delivery={delivery_sql('?1', 'reason')}"
                f" WHERE job_id=?3 AND state IN ({marks})",
                (to_state, time.time(), job_id, *from_states),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return self._job(row)

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (state, reason, attempts, result, ...).

        The viewer's columns follow: label, probability and class from ``result``;
        the delivery state from the state and reason; the destination from the
        destinations the reason names (see jobs.listing).
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "result" in fields:
            result = fields["result"]
            parsed = json.loads(result) if isinstance(result, str) and result else result
            if isinstance(parsed, dict):
                fields.update(result_columns(parsed))
            if not isinstance(result, str):
                fields["result"] = json.dumps(result)
        if "reason" in fields:
            where = destinations_in(fields["reason"])
            if where or fields.get("state") == JobState.DONE:
                fields["destination"] = where
        fields["updated_at"] = time.time()
        names = ", ".join(f"{k}=:{k}" for k in fields)
        if "state" in fields or "reason" in fields:
            state = ":state" if "state" in fields else "state"
            reason = ":reason" if "reason" in fields else "reason"
            names += f", delivery={delivery_sql(state, reason)}"
        with self._db() as db:
            db.execute(f"UPDATE jobs SET {names} WHERE job_id=:job_id_",
                       {**fields, "job_id_": job_id})

    def get(self, job_id: str) -> Job | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def list_jobs(self, state: str | None = None, limit: int = 1000) -> list[Job]:
        query = "SELECT * FROM jobs"
        args: tuple[Any, ...] = ()
        if state:
            query += " WHERE state=?"
            args = (state,)
        query += " ORDER BY received_at DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(query, (*args, limit)).fetchall()
        return [self._job(r) for r in rows]

    def page(self, query: JobQuery) -> tuple[list[Job], tuple[float, str] | None, int]:
        """One page of the viewer's list, newest received first: the jobs, where the
        next page starts (None: this is the last) and how many jobs match in all."""
        paged, args = query.where(paged=True)
        counted, count_args = query.where(paged=False)
        with self._db() as db:
            rows = db.execute(  # the page's ids from an index, then only their rows
                f"SELECT * FROM jobs WHERE job_id IN (SELECT job_id FROM jobs{query.source()}"
                f"{paged} ORDER BY received_at DESC, job_id DESC LIMIT :limit_)"
                " ORDER BY received_at DESC, job_id DESC", {**args, "limit_": query.limit + 1},
            ).fetchall()
            total = db.execute(f"SELECT COUNT(*) FROM jobs{query.source()}{counted}",
                               count_args).fetchone()[0]
        jobs = [self._job(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return jobs, ((jobs[-1].received_at, jobs[-1].job_id) if more else None), int(total)

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state named (0 when none)."""
        with self._db() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        found = {r[0]: r[1] for r in rows}
        return {state.value: found.get(state.value, 0) for state in JobState}

    def recover(self) -> list[str]:
        """Jobs to queue at once after a restart: received ones, and those a crash cut short.

        Jobs left ``processing`` go back to ``received``; jobs left ``delivering``
        (their outputs are built) become ``waiting``, due now.  Jobs already
        ``waiting`` keep their schedule: :meth:`due_for_queue` gives them a
        message for their ``next_attempt_at``.
        """
        now = time.time()
        with self._db() as db:
            db.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE state=?",
                (JobState.RECEIVED, now, JobState.PROCESSING),
            )
            db.execute(
                "UPDATE jobs SET state=?, next_attempt_at=?, updated_at=?, delivery='waiting'"
                " WHERE state=?",
                (JobState.WAITING, now, now, JobState.DELIVERING),
            )
            rows = db.execute(
                "SELECT job_id FROM jobs WHERE state=? OR (state=? AND next_attempt_at<=?)"
                " ORDER BY received_at",
                (JobState.RECEIVED, JobState.WAITING, now),
            ).fetchall()
        return [r[0] for r in rows]

    def due_for_queue(self, settled_before: float) -> list[tuple[str, float]]:
        """Jobs that must have a queue message, with when they are due (epoch seconds).

        ``received`` jobs unchanged since ``settled_before`` (due at once), and every
        ``waiting`` job (due at its ``next_attempt_at``).  Jobs ``processing`` or
        ``delivering`` are in a worker's hands and need none.
        """
        with self._db() as db:
            rows = db.execute(
                "SELECT job_id, state, next_attempt_at FROM jobs"
                " WHERE (state=? AND updated_at<?) OR state=? ORDER BY received_at",
                (JobState.RECEIVED, settled_before, JobState.WAITING),
            ).fetchall()
        return [(r[0], r[2] if r[1] == JobState.WAITING else 0.0) for r in rows]
