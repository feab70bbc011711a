"""The work queue: huey, with its embedded SQLite storage by default.

Queue messages carry only the job id; the spool's ledger is the source of truth.
A message is only a reminder that a job is due: a lost one (a crash between ledger
and queue, a Redis outage, a Redis restarted empty or flushed) is made again from
the ledger, at start-up (:meth:`ecg_dicom.jobs.ledger.JobLedger.recover`) and
while running (:func:`ecg_dicom.jobs.retry.requeue_lost`, every
``queue.requeue_interval`` seconds).  A duplicate message is harmless: the worker
claims a job atomically in the ledger before it runs.

``queue.backend: redis`` selects huey with Redis storage and the same task code
(workers on other machines then need the spool on shared storage: carrying the
DICOM bytes in the payload is the planned scale-out step).  Redis outages are
survived quietly (:mod:`ecg_dicom.jobs.redis_queue`): one log line when Redis goes,
one when it is back, reconnection with a capped backoff.
"""

from __future__ import annotations

from collections.abc import Callable

from huey import SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from ecg_dicom.config import Settings
from ecg_dicom.jobs.redis_queue import GuardedRedisStorage, QueueOutage, QueueUnavailable

TASK_NAME = "ecg_dicom.process_job"


class JobQueue:
    """Enqueue job ids; run them with a huey consumer calling ``handler(job_id)``."""

    def __init__(self, settings: Settings, handler: Callable[[str], None] | None = None) -> None:
        self.outage: QueueOutage | None = None
        if settings.queue.backend == "redis":
            self.huey: Huey = Huey(
                "ecg-dicom", results=False, storage_class=GuardedRedisStorage,
                url=settings.queue.redis_url, reconnect_max=settings.queue.redis_reconnect_max,
            )
            self.outage = self.huey.storage.outage
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

    @property
    def available(self) -> bool:
        """False while the queue (Redis) is known to be unreachable."""
        return self.outage is None or not self.outage.down

    def enqueue(self, job_id: str, delay: float | None = None) -> bool:
        """Queue a job now, or after ``delay`` seconds (for retries with backoff).

        False when the queue is unreachable: the message is dropped without a
        traceback, the job stays in the ledger and is queued again from there.
        """
        if delay:
            self._task.schedule(args=(job_id,), delay=delay)
        else:
            self._task(job_id)
        return self.available

    def queued_job_ids(self) -> set[str] | None:
        """The job ids that have a message (waiting or scheduled); None when the
        queue cannot be read now."""
        try:
            tasks = [*self.huey.pending(), *self.huey.scheduled()]
        except QueueUnavailable:
            return None
        return {str(t.args[0]) for t in tasks if t.name == TASK_NAME and t.args}

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
