"""The spool: received instances on disk and the job ledger beside them.

The spool is the source of truth after a crash.  Each acknowledged instance is
one file ``instances/<job_id>.dcm`` (:mod:`ecg_dicom.jobs.instances`) and one row
in ``ledger.sqlite3`` (:mod:`ecg_dicom.jobs.ledger`; states in
:mod:`ecg_dicom.jobs.state`); the ledger also keeps what each ECG's result was
(:mod:`ecg_dicom.jobs.outputs`).

A row is written only after its file is durable; the C-STORE is acknowledged
only after the row.  On start-up every job that is not ``done``, ``failed`` or
``skipped`` is queued again (:meth:`Spool.recover`).

An object acknowledged but not processed by policy (a SOP class that is not an
ECG input, our own result, another AI's burned-in result: see dicom/ingest.py) is
recorded directly as ``skipped`` with the reason, and its bytes are not kept
(:meth:`Spool.record_skipped`): the row says what arrived, from whom and why
nothing was done with it.
"""

from __future__ import annotations

from pathlib import Path

from ecg_dicom.jobs.instances import InstanceFiles
from ecg_dicom.jobs.ledger import JOBS_SCHEMA, JobLedger, LedgerConnection
from ecg_dicom.jobs.outputs import OUTPUTS_SCHEMA, OutputsLedger


class Spool(InstanceFiles, JobLedger, OutputsLedger):
    """Received files plus the ledger.  Safe to use from many threads and processes."""

    def __init__(self, root: Path, *, fsync: bool = True, min_free_mb: int = 0) -> None:
        InstanceFiles.__init__(self, root, fsync=fsync, min_free_mb=min_free_mb)
        LedgerConnection.__init__(
            self, self.root / "ledger.sqlite3", fsync=fsync, schemas=(JOBS_SCHEMA, OUTPUTS_SCHEMA)
        )
