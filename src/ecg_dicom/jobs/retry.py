"""Queueing jobs again from the ledger.

* :func:`retry_failed` is ``jobs retry`` (the CLI, the HTTP API and the viewer):
  failed jobs queued again by a person;
* :func:`requeue_lost` is the ledger re-queue: every job the ledger says is due
  (``received``, or ``waiting`` for its destination) but that has no message in
  the queue gets one.  Messages are lost when Redis is unreachable at enqueue
  time, restarted empty or flushed; the job is never lost, the ledger holds it.
  :class:`LedgerRequeue` runs it every ``queue.requeue_interval`` seconds in
  ``serve``, so jobs acknowledged during a Redis outage are processed after it
  without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ecg_dicom import metrics
from ecg_dicom.jobs.queue import JobQueue
from ecg_dicom.jobs.spool import Spool
from ecg_dicom.jobs.state import JobState

log = logging.getLogger("ecg_dicom.queue")

#: Seconds a ``received`` job must have been unchanged before the re-queue gives it a
#: message (a job just acknowledged is being queued by the listener right now).
SETTLE_SECONDS = 5.0
#: The same with ``queue.remote`` (the listener queues a job within milliseconds of
#: its acknowledgement; a job the window held back should go out soon after).
REMOTE_SETTLE_SECONDS = 1.0


def retry_failed(spool: Spool, queue: JobQueue, job_ids: list[str] | None = None) -> list[str]:
    """Queue failed jobs again (all, or the given ids).  Returns the ids queued.

    A job whose SR/SC were built goes straight back to delivery (``waiting``, due
    now, a new retry window); the others are processed again from the received
    instance.
    """
    targets = job_ids or [j.job_id for j in spool.list_jobs(JobState.FAILED, limit=100000)]
    queued = []
    for job_id in targets:
        if (found := spool.get(job_id)) is not None and found.origin == "upload":
            continue  # classified in its request; never queued nor sent (web/uploads.py)
        has_results = any(spool.results_path(job_id).glob("*.dcm"))
        job = spool.claim(
            job_id, (JobState.FAILED,), JobState.WAITING if has_results else JobState.RECEIVED
        )
        if job is None:
            continue
        spool.update(job_id, delivery_attempts=0, attempts=0, reason="queued again by retry",
                     waiting_since=0.0, next_attempt_at=time.time())
        queue.enqueue(job_id)
        queued.append(job_id)
    return queued


def requeue_lost(spool: Spool, queue: JobQueue, now: float | None = None,
                 settle: float = SETTLE_SECONDS) -> list[str] | None:
    """Give a queue message to every due job that has none.  Returns the ids queued,
    or None when the queue cannot be read now (the next round tries again).

    A duplicate (a message being taken by a worker as this runs) is harmless: the
    worker claims the job atomically in the ledger.  With ``queue.remote`` this is
    also how the backlog is handed out: ``received`` jobs left in the ledger while
    the window was full go out as workers take jobs (``queue.dispatch_interval``).
    """
    now = time.time() if now is None else now
    due = spool.due_for_queue(settled_before=now - settle)
    if not due:
        return []
    present = queue.queued_job_ids()
    if present is None or (queue.remote is not None and not queue.remote.count()):
        return None
    queued = []
    for job_id, at in due:
        if job_id in present:
            continue
        if not at and queue.remote is not None and queue.remote.full():
            continue  # to read, and the window is full: it waits in the ledger
        if not queue.enqueue(job_id, delay=max(0.0, at - now) or None):
            return None  # the queue went away meanwhile: next round
        queued.append(job_id)
    if queued and queue.remote is not None:  # the backlog's hand-out, every round
        log.debug("handed out %d jobs from the ledger", len(queued))
    elif queued:
        log.info("queued %d jobs again from the ledger (their queue message was lost)",
                 len(queued), extra={"job_ids": queued[:20]})
    return queued


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff: initial, 2x, 4x ... capped at maximum (attempt counts from 1)."""
    return float(min(maximum, initial * (2 ** max(0, attempt - 1))))


class DestinationGate:
    """The destinations this process found unreachable, and when to try each again.

    While a destination is down, one job at a time tries it (the probe); the other
    jobs for it wait for the time the gate names instead of each spending an
    attempt, and a worker for up to ``delivery.timeout``, on a peer known to be
    away.  When the probe gets through, the waiting jobs are woken at once rather
    than at their own next attempt (up to ``delivery.backoff_max`` later).  Kept in
    memory: after a restart the first attempt probes again.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}  # where -> when it may be tried again

    def hold(self, wheres: list[str], probe_seconds: float) -> float:
        """0 when a job for ``wheres`` may try now (it then holds the probe of each
        destination known to be down for ``probe_seconds``); else the seconds to wait."""
        with self._lock:
            now = self.clock()
            known = [w for w in wheres if w in self._down]
            wait = max((self._down[w] - now for w in known), default=0.0)
            if wait > 0:
                return wait
            for where in known:
                self._down[where] = now + probe_seconds
            return 0.0

    def failed(self, where: str, retry_in: float) -> None:
        with self._lock:
            self._down[where] = self.clock() + retry_in

    def reachable(self, wheres: list[str]) -> list[str]:
        """Forget ``wheres``; return those that were down (their waiting jobs can go)."""
        with self._lock:
            return [w for w in wheres if self._down.pop(w, None) is not None]


class LedgerRequeue:
    """A thread running :func:`requeue_lost` every ``interval`` seconds until stopped;
    it also sets the ``ecgdicom_jobs_waiting`` gauge from the ledger."""

    def __init__(self, spool: Spool, queue: JobQueue, interval: float) -> None:
        self.spool = spool
        self.queue = queue
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ledger-requeue")

    def start(self) -> LedgerRequeue:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def run_once(self) -> list[str] | None:
        metrics.JOBS_WAITING.set(self.spool.counts()[JobState.WAITING.value])
        if self.queue.remote is not None:  # the hand-out of the backlog: never long idle
            return requeue_lost(self.spool, self.queue, settle=REMOTE_SETTLE_SECONDS)
        return requeue_lost(self.spool, self.queue)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.run_once()
                failing = False
            except Exception:
                if not failing:  # once per run of failures, not every round
                    log.exception("ledger re-queue failed; trying again every %.0f s",
                                  self.interval)
                failing = True
            self._stop.wait(self.interval)
