"""The work queue: huey, with its embedded SQLite storage by default.

Queue messages carry only the job id; the spool's ledger is the source of truth.
A message is only a reminder that a job is due: a lost one (a crash between ledger
and queue, a Redis outage, a Redis restarted empty or flushed) is made again from
the ledger, at start-up (:meth:`ecg_dicom.jobs.ledger.JobLedger.recover`) and
while running (:func:`ecg_dicom.jobs.retry.requeue_lost`, every
``queue.requeue_interval`` seconds).  A duplicate message is harmless: the worker
claims a job atomically in the ledger before it runs.

``queue.backend: redis`` selects huey with Redis storage and the same task code
(workers on other machines then share the spool, or, with ``queue.remote: true``,
share nothing: the instance's bytes travel in Redis beside the message and the
results come back through it, see :mod:`ecg_dicom.jobs.remote_queue`).  Redis outages are
survived quietly (:mod:`ecg_dicom.jobs.redis_queue`): one log line when Redis goes,
one when it is back, reconnection with a capped backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huey import SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from ecg_dicom.config import Settings
from ecg_dicom.jobs.redis_queue import GuardedRedisStorage, QueueOutage, QueueUnavailable
from ecg_dicom.jobs.remote_queue import RemoteChannel

TASK_NAME = "ecg_dicom.process_job"
#: queue.remote: "read this ECG" (job id, what the build needs), for any worker host.
READ_TASK = "ecg_dicom.read_job"
#: queue.remote: a worker's answer (job id, the built objects or why none), for serve.
RESULT_TASK = "ecg_dicom.job_result"

#: What ``serve`` hands a remote worker for a job, made when there is room: the
#: instance's bytes and the small facts the build needs (slot, history).
Handout = Callable[[], tuple[bytes, dict[str, Any]]]


class JobQueue:
    """Enqueue job ids; run them with a huey consumer calling ``handler(job_id)``."""

    def __init__(self, settings: Settings, handler: Callable[[str], None] | None = None) -> None:
        self.outage: QueueOutage | None = None
        self.remote: RemoteChannel | None = None
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
        self._handout: Callable[[str], Handout | None] | None = None
        self._reader: Callable[[str, dict[str, Any]], None] | None = None
        self._intake: Callable[[str, dict[str, Any]], None] | None = None

        def process_job(job_id: str) -> None:
            if self._handler is None:
                raise RuntimeError("this queue has no job handler (producer only)")
            self._handler(job_id)

        self._task = self.huey.task(name=TASK_NAME)(process_job)
        if settings.queue.remote:
            # The work queue, consumed by every worker host; its storage shares the
            # home queue's outage (one line per Redis outage, one backoff).
            self.work: Huey = Huey(
                "ecg-dicom-work", results=False, storage_class=GuardedRedisStorage,
                url=settings.queue.redis_url, reconnect_max=settings.queue.redis_reconnect_max,
            )
            assert self.outage is not None
            self.work.storage.outage = self.outage
            self.remote = RemoteChannel(self.work.storage, self.outage,
                                        window=settings.queue.window,
                                        lease_seconds=settings.queue.lease_seconds)

            def read_job(job_id: str, facts: dict[str, Any]) -> None:
                if self._reader is None:
                    raise RuntimeError("this queue reads no jobs")
                self._reader(job_id, facts)

            def job_result(job_id: str, answer: dict[str, Any]) -> None:
                if self._intake is None:
                    raise RuntimeError("this queue takes no results")
                self._intake(job_id, answer)

            self._read_task = self.work.task(name=READ_TASK)(read_job)
            self._result_task = self.huey.task(name=RESULT_TASK)(job_result)

    def set_handler(self, handler: Callable[[str], None]) -> None:
        self._handler = handler

    def set_remote(self, *, handout: Callable[[str], Handout | None] | None = None,
                   reader: Callable[[str, dict[str, Any]], None] | None = None,
                   intake: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """queue.remote: ``handout`` (serve: a received job's bytes and facts),
        ``reader`` (a worker: reads a job) and ``intake`` (serve: a worker's answer)."""
        self._handout = handout or self._handout
        self._reader = reader or self._reader
        self._intake = intake or self._intake

    @property
    def available(self) -> bool:
        """False while the queue (Redis) is known to be unreachable."""
        return self.outage is None or not self.outage.down

    def enqueue(self, job_id: str, delay: float | None = None) -> bool:
        """Queue a job now, or after ``delay`` seconds (for retries with backoff).

        False when the queue is unreachable: the message is dropped without a
        traceback, the job stays in the ledger and is queued again from there.
        With ``queue.remote`` a job to read goes to the worker hosts with its bytes
        (when the window has room: otherwise it waits in the ledger and the ledger
        re-queue hands it out later); a job to deliver stays with serve.
        """
        if self.remote is not None and self._handout is not None:
            handout = self._handout(job_id)
            if handout is not None:
                if not delay and not self.remote.room():
                    return self.available  # in the ledger; handed out when there is room
                data, facts = handout()
                if not self.remote.put_instance(job_id, data):
                    return False
                if delay:
                    self._read_task.schedule(args=(job_id, facts), delay=delay)
                else:
                    self._read_task(job_id, facts)
                return self.available
        if delay:
            self._task.schedule(args=(job_id,), delay=delay)
        else:
            self._task(job_id)
        return self.available

    def send_result(self, job_id: str, answer: dict[str, Any]) -> bool:
        """A worker's answer for serve (queue.remote); False when Redis is away."""
        self._result_task(job_id, answer)
        return self.available

    def queued_job_ids(self) -> set[str] | None:
        """The job ids that have a message (waiting or scheduled) or, with
        ``queue.remote``, a worker holding their lease; None when the queue cannot
        be read now."""
        hueys = [self.huey] if self.remote is None else [self.huey, self.work]
        try:
            tasks = [t for h in hueys for t in (*h.pending(), *h.scheduled())]
            leased = self.remote.leased() if self.remote is not None else set()
        except QueueUnavailable:
            return None
        names = (TASK_NAME, READ_TASK, RESULT_TASK)
        return {str(t.args[0]) for t in tasks if t.name in names and t.args} | leased

    def consumer(self, workers: int, *, work: bool = False) -> Consumer:
        """A huey consumer with ``workers`` threads, polling an idle queue every 0.1 s
        (an SQLite read; it bounds the wait of a new job before a worker takes it).
        ``work``: the remote work queue (queue.remote) instead of serve's own."""
        huey = self.work if work else self.huey
        return huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            max_delay=0.1,
            check_worker_health=True,
        )
