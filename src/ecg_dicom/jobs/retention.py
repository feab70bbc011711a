"""Retention: the files of finished jobs are removed; the ledger remembers that they were.

Without it every ECG keeps its input and its SR/SC in the spool for ever (~6 MB
each).  One sweep (:meth:`Retention.sweep`, every ``storage.retention.interval_minutes``
in ``serve``, or once by ``ecg-dicom spool clean``) removes:

* the spooled input (``instances/<job_id>.dcm``) and the kept SR/SC
  (``results/<job_id>/``) of jobs ``done`` or ``skipped`` more than
  ``inputs_days`` ago;
* then, while the spool folder holds more than ``max_spool_gb``, those of the
  oldest ``done``/``skipped`` jobs, whatever their age;
* files in ``storage.output_dir`` (the kept copies of results) older than
  ``outputs_days``.

Never the files of a job that is ``received``, ``processing``, ``delivering``,
``failed`` or waiting: those are needed to finish it or to retry it.  ``done``
and ``skipped`` are terminal (nothing moves a job out of them), so a sweep never
races a worker.

The job's row stays (``jobs`` and ``/jobs`` still show it): its reason gains "files
removed by retention on <date> (<why>)" and the ``retention`` table records when,
why and how many bytes.  Each removal is audited (110105 DICOM Study Deleted, with the
Study Instance UID, the SOP Instance UIDs and the Patient ID read from the input
before it is removed).  Metrics: ``ecgdicom_retention_removed_{bytes,files}_total``
by kind, ``ecgdicom_spool_bytes``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from ecg_dicom import audit, metrics
from ecg_dicom.config import RetentionSettings
from ecg_dicom.jobs.ledger import LedgerConnection
from ecg_dicom.jobs.spool import Spool
from ecg_dicom.jobs.state import JobState

log = logging.getLogger("ecg_dicom.retention")

RETENTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS retention (
    job_id TEXT PRIMARY KEY,
    removed_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    why TEXT NOT NULL
);
"""
DAY = 86400.0
_GB = 1024**3
_MB = 1024**2
#: The states whose files retention may remove (terminal ones).
FINISHED = (JobState.DONE, JobState.SKIPPED)


@dataclass
class SweepReport:
    """What one sweep removed."""

    aged_jobs: int = 0
    aged_bytes: int = 0
    size_jobs: int = 0
    size_bytes: int = 0
    output_files: int = 0
    output_bytes: int = 0
    spool_bytes_before: int = 0
    spool_bytes_after: int = 0
    files: int = 0

    def summary(self) -> str:
        return (
            f"removed the files of {self.aged_jobs} jobs past inputs_days "
            f"({self.aged_bytes / _MB:.1f} MB) and of {self.size_jobs} more for max_spool_gb "
            f"({self.size_bytes / _MB:.1f} MB), {self.output_files} kept outputs "
            f"({self.output_bytes / _MB:.1f} MB); spool {self.spool_bytes_before / _MB:.1f} MB "
            f"-> {self.spool_bytes_after / _MB:.1f} MB"
        )


def folder_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (0 when it does not exist)."""
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


class Retention(LedgerConnection):
    """Sweeps one spool (and the output folder) by ``storage.retention``."""

    def __init__(
        self, spool: Spool, settings: RetentionSettings, output_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(spool.ledger_path, fsync=spool.fsync, schemas=(RETENTION_SCHEMA,))
        self.spool = spool
        self.settings = settings
        self.output_dir = output_dir
        self.clock = clock

    # -- the sweep ----------------------------------------------------------------
    def sweep(self) -> SweepReport:
        """Remove what the settings say may go; one INFO line with the counts."""
        report = SweepReport(spool_bytes_before=folder_bytes(self.spool.root))
        now = self.clock()
        keep = self.settings
        if keep.inputs_days > 0:
            why = f"done more than storage.retention.inputs_days={keep.inputs_days:g} ago"
            for job_id in self._candidates(before=now - keep.inputs_days * DAY):
                freed, files = self.remove_job_files(job_id, why)
                report.aged_jobs += files > 0
                report.aged_bytes += freed
                report.files += files
        held = report.spool_bytes_before - report.aged_bytes
        limit = int(keep.max_spool_gb * _GB)
        if limit and held > limit:
            why = f"spool over storage.retention.max_spool_gb={keep.max_spool_gb:g}"
            for job_id in self._candidates(before=now):
                if held <= limit:
                    break
                freed, files = self.remove_job_files(job_id, why)
                held -= freed
                report.size_jobs += files > 0
                report.size_bytes += freed
                report.files += files
            if held > limit:
                log.warning(
                    "the spool still holds %d MB, over storage.retention.max_spool_gb=%g: the "
                    "rest belongs to unfinished or failed jobs", held // _MB, keep.max_spool_gb,
                )
        if keep.outputs_days > 0 and self.output_dir is not None:
            files, freed = self._remove_old_outputs(now - keep.outputs_days * DAY)
            report.output_files, report.output_bytes = files, freed
            report.files += files
        report.spool_bytes_after = folder_bytes(self.spool.root)
        metrics.SPOOL_BYTES.set(report.spool_bytes_after)
        log.info("retention sweep: %s", report.summary(), extra={
            "removed_jobs": report.aged_jobs + report.size_jobs, "removed_files": report.files,
            "removed_bytes": report.aged_bytes + report.size_bytes + report.output_bytes,
            "spool_bytes": report.spool_bytes_after,
        })
        return report

    def _candidates(self, before: float) -> list[str]:
        """Finished jobs not swept yet, finished before ``before``, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT job_id FROM jobs WHERE state IN (?,?) AND updated_at < ? AND job_id NOT"
                " IN (SELECT job_id FROM retention) ORDER BY updated_at",
                (*FINISHED, before),
            ).fetchall()
        return [r[0] for r in rows]

    # -- one job ------------------------------------------------------------------
    def remove_job_files(self, job_id: str, why: str) -> tuple[int, int]:
        """Remove a finished job's input and kept results; returns (bytes, files).

        Refuses (returns (0, 0)) a job that is not finished.  A job that had no
        files (an object skipped at reception) is only marked as swept.
        """
        job = self.spool.get(job_id)
        if job is None or job.state not in FINISHED:
            return 0, 0
        instance = self.spool.instance_path(job_id)
        results = self.spool.results_path(job_id)
        paths = [instance, *sorted(results.glob("*"))] if results.is_dir() else [instance]
        found = [(p, p.stat().st_size) for p in paths if p.is_file()]
        objects = audit.Instances(job.study_instance_uid,
                                  [(job.sop_class_uid, job.sop_instance_uid)],
                                  patient_id=_patient_id(instance) if found else "")
        freed = 0
        for path, size in found:
            path.unlink(missing_ok=True)
            kind = "input" if path == instance else "results"
            metrics.RETENTION_BYTES.labels(kind=kind).inc(size)
            metrics.RETENTION_FILES.labels(kind=kind).inc()
            freed += size
        shutil.rmtree(results, ignore_errors=True)
        note = (f"; files removed by retention on {time.strftime('%Y-%m-%d', time.gmtime())}"
                f" ({why})")
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO retention (job_id, removed_at, bytes, why)"
                       " VALUES (?,?,?,?)", (job_id, self.clock(), freed, why))
            if found:  # the row stays; its reason says the files are gone
                db.execute("UPDATE jobs SET reason = reason || ? WHERE job_id=?", (note, job_id))
        if found:
            audit.study_deleted(objects, f"retention: {why}")
        return freed, len(found)

    def removed(self, job_id: str) -> tuple[float, str] | None:
        """When and why retention removed a job's files (None: it did not)."""
        with self._db() as db:
            row = db.execute("SELECT removed_at, why, bytes FROM retention WHERE job_id=?",
                             (job_id,)).fetchone()
        return (float(row[0]), str(row[1])) if row is not None and row[2] else None

    def _remove_old_outputs(self, before: float) -> tuple[int, int]:
        assert self.output_dir is not None
        files = freed = 0
        for folder, _dirs, names in os.walk(self.output_dir):
            for name in names:
                path = Path(folder) / name
                try:
                    info = path.lstat()
                    if info.st_mtime >= before or not path.is_file():
                        continue
                    path.unlink()
                except OSError:
                    continue
                files += 1
                freed += info.st_size
        metrics.RETENTION_BYTES.labels(kind="outputs").inc(freed)
        metrics.RETENTION_FILES.labels(kind="outputs").inc(files)
        return files, freed


def _patient_id(instance: Path) -> str:
    """The Patient ID of a spooled input, for the audit message ("" when unreadable)."""
    try:
        ds = dcmread(instance, stop_before_pixels=True, specific_tags=["PatientID"],
                     defer_size=1024)
        return str(ds.get("PatientID", "") or "")
    except Exception:  # a hostile file must not stop the sweep
        return ""


def not_retried_because(spool: Spool, job_id: str) -> str:
    """Why ``jobs retry <job_id>`` did not queue a job, in words."""
    job = spool.get(job_id) if job_id.isalnum() else None
    if job is None:
        return f"{job_id}: no such job"
    removed = Retention(spool, RetentionSettings()).removed(job_id)
    if removed is not None:
        day = time.strftime("%Y-%m-%d", time.gmtime(removed[0]))
        return (f"{job_id}: not queued: the job is {job.state} and its input is gone, removed "
                f"by retention on {day} ({removed[1]}); send the ECG again to process it again")
    return f"{job_id}: not queued: the job is {job.state}; only failed jobs are retried"
