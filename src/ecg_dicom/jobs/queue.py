"""The work queue: huey, with its embedded SQLite storage by default.

Queue messages carry only the job id; the spool's ledger is the source of truth.
A lost message (crash between ledger and queue) is recovered at start-up by
:meth:`ecg_dicom.jobs.spool.Spool.recover`, and a duplicate message is harmless: the
worker claims a job atomically in the ledger before it runs.

``queue.backend: redis`` selects huey's RedisHuey with the same task code
(workers on other machines then need the spool on shared storage: carrying the
DICOM bytes in the payload is the planned scale-out step).
"""

from __future__ import annotations

from collections.abc import Callable

from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from ecg_dicom.config import Settings

TASK_NAME = "ecg_dicom.process_job"


class JobQueue:
    """Enqueue job ids; run them with a huey consumer calling ``handler(job_id)``."""

    def __init__(self, settings: Settings, handler: Callable[[str], None] | None = None) -> None:
        if settings.queue.backend == "redis":
            self.huey: Huey = RedisHuey("ecg-dicom", url=settings.queue.redis_url, results=False)
        else:
            settings.queue_path.parent.mkdir(parents=True, exist_ok=True)
            # The ledger is fsynced; the queue need not be (a lost message is recovered).
            self.huey = SqliteHuey(
                "ecg-dicom", filename=str(settings.queue_path), results=False, fsync=False
            )
        self._handler = handler

        def process_job(job_id: str) -> None:
            if self._handler is None:
                raise RuntimeError("this queue has no job handler (producer only)")
            self._handler(job_id)

        self._task = self.huey.task(name=TASK_NAME)(process_job)

    def set_handler(self, handler: Callable[[str], None]) -> None:
        self._handler = handler

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        """Queue a job now, or after ``delay`` seconds (for retries with backoff)."""
        if delay:
            self._task.schedule(args=(job_id,), delay=delay)
        else:
            self._task(job_id)

    def consumer(self, workers: int) -> Consumer:
        """A huey consumer with ``workers`` threads, polling an idle queue every 0.1 s
        (an SQLite read; it bounds the wait of a new job before a worker takes it)."""
        return self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            max_delay=0.1,
            check_worker_health=True,
        )
