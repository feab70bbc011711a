"""Durable jobs: the spool (received files + SQLite ledger), job states, the huey queue.

The public face: code outside ``jobs/`` imports these names from here.
"""

from ecg_dicom.jobs.instances import spool_tmp_dir
from ecg_dicom.jobs.ledger import Arrival, Job
from ecg_dicom.jobs.listing import JobQuery
from ecg_dicom.jobs.queue import TASK_NAME, JobQueue
from ecg_dicom.jobs.retention import Retention, SweepReport, not_retried_because
from ecg_dicom.jobs.retry import (
    DestinationGate,
    LedgerRequeue,
    backoff_delay,
    requeue_lost,
    retry_failed,
)
from ecg_dicom.jobs.spool import Spool
from ecg_dicom.jobs.state import JobState

__all__ = [
    "TASK_NAME", "Arrival", "DestinationGate", "Job", "JobQuery", "JobQueue", "JobState",
    "LedgerRequeue",
    "Spool", "backoff_delay", "requeue_lost",
    "retry_failed", "spool_tmp_dir", "Retention", "SweepReport", "not_retried_because",
]
