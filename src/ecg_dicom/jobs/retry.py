"""``jobs retry``: queue failed jobs again (the CLI, the HTTP API and the viewer)."""

from __future__ import annotations

from ecg_dicom.jobs.queue import JobQueue
from ecg_dicom.jobs.spool import Spool
from ecg_dicom.jobs.state import JobState


def retry_failed(spool: Spool, queue: JobQueue, job_ids: list[str] | None = None) -> list[str]:
    """Queue failed jobs again (all, or the given ids).  Returns the ids queued.

    A job whose SR/SC were built goes straight back to delivery; the others are
    processed again from the received instance.
    """
    targets = job_ids or [j.job_id for j in spool.list_jobs(JobState.FAILED, limit=100000)]
    queued = []
    for job_id in targets:
        has_results = any(spool.results_path(job_id).glob("*.dcm"))
        job = spool.claim(
            job_id, (JobState.FAILED,), JobState.DELIVERING if has_results else JobState.RECEIVED
        )
        if job is None:
            continue
        spool.update(job_id, delivery_attempts=0, attempts=0, reason="queued again by retry")
        queue.enqueue(job_id)
        queued.append(job_id)
    return queued
