"""The spool: received instances on disk and the job ledger beside them.

The spool is the source of truth after a crash.  Each acknowledged instance is
one file ``instances/<job_id>.dcm`` (the bytes exactly as received, in the DICOM
File Format) and one row in ``ledger.sqlite3``:

    received -> processing -> delivering -> done
                     |             |
                     +-> failed <--+      (with reason and attempts)
                     |
                     +-> skipped          (not an ECG after all, e.g. a Hemodynamic
                                           object without ECG leads; with reason)

A row is written (and committed with ``synchronous=FULL``) only after its file
is durable; the C-STORE is acknowledged only after the row.  On start-up every
job that is not ``done``, ``failed`` or ``skipped`` is queued again
(:meth:`Spool.recover`).

An object acknowledged but not processed by policy (a SOP class that is not an
ECG input, our own result, another AI's burned-in result: see scp.py) is
recorded directly as ``skipped`` with the reason, and its bytes are not kept
(:meth:`Spool.record_skipped`): the row says what arrived, from whom and why
nothing was done with it.

File names are made from a random job id, never from UIDs sent by a peer, so
nothing is written outside the spool whatever the UIDs contain.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecg_dicom.errors import StorageError
from ecg_dicom.records import DocumentReference, ResultHistory

RECEIVED = "received"
PROCESSING = "processing"
DELIVERING = "delivering"
DONE = "done"
FAILED = "failed"
#: Terminal: acknowledged, never processed (the reason says why).
SKIPPED = "skipped"
STATES = (RECEIVED, PROCESSING, DELIVERING, DONE, FAILED, SKIPPED)
#: States a restart must take up again.
UNFINISHED = (RECEIVED, PROCESSING, DELIVERING)

_SCHEMA = """
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
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_sop ON jobs(sop_instance_uid);
"""

#: The results each source ECG got, one row per (study, source instance): ``slot`` is its
#: place among the ECGs of the study (it chooses the results' Series Numbers);
#: ``built_sr`` the SOP Instance UID of the SR last delivered as built, ``sent_sr`` where
#: that SR is at the PACS (JSON: study/series/class/instance; the class may be a
#: fallback), ``replaced_sr`` the SR it replaced (JSON, or empty).
_OUTPUTS_SCHEMA = """
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


@dataclass(frozen=True)
class Job:
    """One row of the ledger."""

    job_id: str
    state: str
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

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Received files plus the ledger.  Safe to use from many threads and processes."""

    def __init__(self, root: Path, *, fsync: bool = True, min_free_mb: int = 0) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.min_free_mb = min_free_mb
        self.instances_dir = self.root / "instances"
        self.tmp_dir = self.root / "tmp"
        self.results_dir = self.root / "results"
        for folder in (self.instances_dir, self.tmp_dir, self.results_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.ledger_path = self.root / "ledger.sqlite3"
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_SCHEMA)
            db.executescript(_OUTPUTS_SCHEMA)

    # -- ledger ------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection to the ledger (opened once per thread)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.ledger_path, timeout=30.0, isolation_level=None, check_same_thread=True
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL" if self.fsync else "PRAGMA synchronous=OFF")
            db.row_factory = sqlite3.Row
            self._local.db = db
        yield db

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        data["result"] = json.loads(data["result"]) if data["result"] else {}
        return Job(**data)

    # -- receiving -----------------------------------------------------------
    def new_job_id(self) -> str:
        return uuid.uuid4().hex

    def instance_path(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"invalid job id {job_id!r}")
        return self.instances_dir / f"{job_id}.dcm"

    def check_free_space(self) -> None:
        """Raise StorageError when the spool's disk is below the configured reserve."""
        if self.min_free_mb:
            free = shutil.disk_usage(self.root).free
            if free < self.min_free_mb * 1024 * 1024:
                raise StorageError(
                    f"spool disk has {free // (1024 * 1024)} MB free, "
                    f"below storage.min_free_mb={self.min_free_mb}"
                )

    def adopt_file(self, job_id: str, received: Path) -> Path:
        """Make a received file durable under the spool: fsync, rename, fsync the folder.

        ``received`` must be on the spool's file system (``tmp/``); it is moved,
        not copied.
        """
        target = self.instance_path(job_id)
        try:
            if self.fsync:
                fd = os.open(received, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(received, target)
            if self.fsync:
                _fsync_dir(self.instances_dir)
        except OSError as exc:
            raise StorageError(f"could not store received instance: {exc}") from exc
        return target

    def write_bytes(self, job_id: str, data: bytes) -> Path:
        """Store bytes durably (tmp file, fsync, rename) as the instance of ``job_id``."""
        tmp = self.tmp_dir / f"{job_id}.part"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"could not store received instance: {exc}") from exc
        return self.adopt_file(job_id, tmp)

    def record_received(
        self,
        job_id: str,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        study_instance_uid: str = "",
        calling_ae: str = "",
        peer_address: str = "",
        size: int = 0,
    ) -> None:
        now = time.time()
        try:
            with self._db() as db:
                db.execute(
                    "INSERT INTO jobs (job_id, state, sop_class_uid, sop_instance_uid,"
                    " study_instance_uid, calling_ae, peer_address, size, received_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (job_id, RECEIVED, sop_class_uid, sop_instance_uid, study_instance_uid,
                     calling_ae, peer_address, size, now, now),
                )
        except sqlite3.Error as exc:
            raise StorageError(f"could not record received instance in the ledger: {exc}") from exc

    def record_skipped(
        self,
        job_id: str,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        reason: str,
        study_instance_uid: str = "",
        calling_ae: str = "",
        peer_address: str = "",
        size: int = 0,
    ) -> None:
        """Record an acknowledged object that will not be processed, with the reason.

        No file is kept for it (the caller discards the received bytes); ``size``
        records how many bytes arrived.  Committed before the C-STORE answers.
        """
        now = time.time()
        try:
            with self._db() as db:
                db.execute(
                    "INSERT INTO jobs (job_id, state, sop_class_uid, sop_instance_uid,"
                    " study_instance_uid, calling_ae, peer_address, size, reason,"
                    " received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (job_id, SKIPPED, sop_class_uid, sop_instance_uid, study_instance_uid,
                     calling_ae, peer_address, size, reason, now, now),
                )
        except sqlite3.Error as exc:
            raise StorageError(f"could not record skipped instance in the ledger: {exc}") from exc

    def clean_tmp(self) -> int:
        """Remove partial files of never-acknowledged transfers (called at start-up)."""
        removed = 0
        for leftover in self.tmp_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- state transitions ---------------------------------------------------
    def claim(self, job_id: str, from_states: tuple[str, ...], to_state: str) -> Job | None:
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
        allowed = {"state", "reason", "attempts", "delivery_attempts", "result"}
        unknown = set(fields) - allowed
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
        with self._db() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        found = {r[0]: r[1] for r in rows}
        return {state: found.get(state, 0) for state in STATES}

    def recover(self) -> list[str]:
        """Jobs to queue again after a restart: everything not done, failed or skipped.

        Jobs left ``processing`` by a crash go back to ``received``; jobs left
        ``delivering`` stay there (their outputs are already built).
        """
        with self._db() as db:
            db.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE state=?",
                (RECEIVED, time.time(), PROCESSING),
            )
            rows = db.execute(
                "SELECT job_id FROM jobs WHERE state IN (?,?) ORDER BY received_at",
                (RECEIVED, DELIVERING),
            ).fetchall()
        return [r[0] for r in rows]

    # -- results ---------------------------------------------------------------
    def results_path(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"invalid job id {job_id!r}")
        return self.results_dir / job_id

    # -- what each ECG got (series slots, the SR a new one replaces) ---------
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

    def result_history(self, study_instance_uid: str, sop_instance_uid: str) -> ResultHistory | None:
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
