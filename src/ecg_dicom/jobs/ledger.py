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
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecg_dicom.errors import StorageError
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
}

#: The columns :meth:`JobLedger.update` may set.
_UPDATABLE = frozenset({
    "state", "reason", "attempts", "delivery_attempts", "result", "waiting_since",
    "next_attempt_at",
})


@dataclass(frozen=True)
class Job:
    """One row of the ledger."""

    job_id: str
    state: JobState
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    calling_ae: str
    peer_address: str
    size: int
    attempts: int
    delivery_attempts: int
    reason: str
    result: dict[str, Any]
    received_at: float
    updated_at: float
    #: When the destination was first found unreachable (0: it never was, or a
    #: ``jobs retry`` started a new window).
    waiting_since: float = 0.0
    #: When a ``waiting`` job is tried again (epoch seconds).
    next_attempt_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Arrival:
    """What arrived in one C-STORE, as its ledger row records it."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str = ""
    calling_ae: str = ""
    peer_address: str = ""
    #: Bytes received.
    size: int = 0


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

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        data["state"] = JobState(data["state"])
        data["result"] = json.loads(data["result"]) if data["result"] else {}
        return Job(**data)

    def _insert(self, job_id: str, state: JobState, arrival: Arrival, reason: str = "") -> None:
        now = time.time()
        try:
            with self._db() as db:
                db.execute(
                    "INSERT INTO jobs (job_id, state, sop_class_uid, sop_instance_uid,"
                    " study_instance_uid, calling_ae, peer_address, size, reason,"
                    " received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (job_id, state, arrival.sop_class_uid, arrival.sop_instance_uid,
                     arrival.study_instance_uid, arrival.calling_ae, arrival.peer_address,
                     arrival.size, reason, now, now),
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
                f"UPDATE jobs SET state=?, updated_at=? WHERE job_id=? AND state IN ({marks})",
                (to_state, time.time(), job_id, *from_states),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return self._job(row)

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (state, reason, attempts, result, ...)."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "result" in fields and not isinstance(fields["result"], str):
            fields["result"] = json.dumps(fields["result"])
        fields["updated_at"] = time.time()
        names = ", ".join(f"{k}=?" for k in fields)
        with self._db() as db:
            db.execute(f"UPDATE jobs SET {names} WHERE job_id=?", (*fields.values(), job_id))

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
                "UPDATE jobs SET state=?, next_attempt_at=?, updated_at=? WHERE state=?",
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
