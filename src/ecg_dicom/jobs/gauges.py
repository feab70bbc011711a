"""The ledger's gauges: queue depth, jobs per state and the age of the oldest
unfinished job (``serve`` calls :func:`update_queue_gauges` every few seconds).

"Unfinished" is every state a job is still on its way in: received, processing,
delivering and waiting (for its destination).  The oldest such job's age is the
alarm of a stuck queue or an unreachable PACS: it grows while nothing moves.
"""

from __future__ import annotations

import time

from ecg_dicom import metrics
from ecg_dicom.jobs.ledger import JobLedger
from ecg_dicom.jobs.state import JobState

#: The states of a job not yet finished.
UNFINISHED = (JobState.RECEIVED, JobState.PROCESSING, JobState.DELIVERING, JobState.WAITING)


def oldest_unfinished(ledger: JobLedger) -> float | None:
    """``received_at`` (epoch s) of the oldest unfinished job, None when none."""
    marks = ",".join("?" * len(UNFINISHED))
    with ledger._db() as db:  # one indexed query (jobs_state); the ledger's own connection
        row = db.execute(
            f"SELECT MIN(received_at) FROM jobs WHERE state IN ({marks})",
            [s.value for s in UNFINISHED],
        ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def update_queue_gauges(ledger: JobLedger, now: float | None = None) -> dict[str, int]:
    """Set ``ecgdicom_queued``, ``ecgdicom_jobs{state}`` and
    ``ecgdicom_oldest_unfinished_seconds`` from the ledger; returns the counts."""
    counts = ledger.counts()
    for state, count in counts.items():
        metrics.JOBS.labels(state=state).set(count)
    metrics.QUEUED.set(sum(counts[s.value] for s in UNFINISHED))
    oldest = oldest_unfinished(ledger)
    now = time.time() if now is None else now
    metrics.OLDEST_UNFINISHED.set(0.0 if oldest is None else max(0.0, now - oldest))
    return counts
