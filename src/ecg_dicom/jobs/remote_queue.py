"""What travels through Redis besides the job ids when workers run on other hosts
(``queue.remote: true``, see docs/deploy.md "Workers on other hosts").

A worker on another host shares no filesystem with ``serve``: it cannot read the
spool nor write the ledger.  So, for each job handed out:

* **the instance's bytes** are put in Redis under ``ecg-dicom:instance:<job_id>``
  (kept :data:`INSTANCE_TTL` at most) beside a small queue message naming the job,
  its series slot and result history (the two ledger facts the build needs).  At
  most ``queue.window`` jobs are handed out at once (:meth:`RemoteChannel.room`):
  Redis holds a bounded number of ECGs (0.1-6 MB each) however long the backlog;
  the backlog itself waits in the ledger, on disk, where it was acknowledged;
* **a lease** ``ecg-dicom:lease:<job_id>`` (``SET NX``, ``queue.lease_seconds``,
  renewed while the worker reads) says a worker holds the job: a duplicate message
  finds it taken, and a job whose worker died is free again once the lease expires.
  A worker that sent its answer leaves the lease in place: ``serve`` deletes it once
  it has claimed the answer, so the job is never without a message, a lease or a
  state other than ``received`` (no second hand-out in between);
* **the result** (the built SC and SR as DICOM bytes, or why there is none) comes
  back as a message that only ``serve`` consumes; ``serve`` claims the job in its
  ledger, keeps the objects in its spool and sends them: results go out from the
  listener, once per job, whatever number of workers read it.

Every key here is a cache of the ledger: Redis restarted empty or flushed loses
messages, bytes and leases together, and the ledger re-queue hands the jobs out
again (:func:`ecg_dicom.jobs.retry.requeue_lost` counts a leased job as queued).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from huey.storage import RedisStorage

from ecg_dicom.jobs.redis_queue import QueueOutage, QueueUnavailable

log = logging.getLogger("ecg_dicom.queue")

INSTANCE_PREFIX = "ecg-dicom:instance:"
LEASE_PREFIX = "ecg-dicom:lease:"
#: Longest time an instance's bytes stay in Redis when nobody takes them (the ledger
#: hands the job out again anyway; this only bounds what a lost job leaves behind).
INSTANCE_TTL = 24 * 3600
#: Seconds a count of the handed-out queue is trusted before Redis is asked again.
ROOM_REFRESH = 0.25


class RemoteChannel:
    """The Redis keys of remote work: instance bytes, leases, and the window."""

    def __init__(self, storage: RedisStorage, outage: QueueOutage, *, window: int,
                 lease_seconds: float) -> None:
        self.storage = storage
        self.outage = outage
        self.window = window
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._counted_at = -1e9
        self._handed_out = 0

    @property
    def conn(self):  # type: ignore[no-untyped-def]
        return self.storage.conn

    # -- serve's side ---------------------------------------------------------
    def count(self) -> bool:
        """Count the jobs waiting in Redis now; False when Redis cannot be asked."""
        try:
            waiting = int(self.outage.call(self.storage.queue_size))
        except QueueUnavailable:
            return False
        with self._lock:
            self._handed_out, self._counted_at = waiting, time.monotonic()
        return True

    def room(self) -> bool:
        """True (and one place taken) when fewer than ``window`` jobs wait in Redis."""
        if time.monotonic() - self._counted_at > ROOM_REFRESH and not self.count():
            return False  # the job stays in the ledger; handed out when Redis is back
        with self._lock:
            if self._handed_out >= self.window:
                return False
            self._handed_out += 1
            return True

    def full(self) -> bool:
        """True when the last count (:meth:`count`, then the places taken since) says
        the window is full; no Redis call (the ledger re-queue counts once per round
        and then skips the whole backlog cheaply)."""
        with self._lock:
            return self._handed_out >= self.window

    def put_instance(self, job_id: str, data: bytes) -> bool:
        try:
            self.outage.call(lambda: self.conn.set(INSTANCE_PREFIX + job_id, data,
                                                   ex=INSTANCE_TTL))
        except QueueUnavailable:
            return False
        return True

    def leased(self) -> set[str]:
        """The jobs a worker holds now (raises QueueUnavailable)."""
        keys = self.outage.call(lambda: list(self.conn.scan_iter(LEASE_PREFIX + "*", count=1000)))
        return {k.decode()[len(LEASE_PREFIX):] for k in keys}

    def forget(self, job_id: str, *, lease: bool) -> None:
        """Drop a job's bytes, and (``lease``) the lease its worker left for serve to end
        once the answer is claimed; quietly nothing while Redis is away."""
        keys = [INSTANCE_PREFIX + job_id, *([LEASE_PREFIX + job_id] if lease else [])]
        try:
            self.outage.call(lambda: self.conn.delete(*keys))
        except QueueUnavailable:
            pass

    # -- a worker's side --------------------------------------------------------
    def take(self, job_id: str, holder: str) -> bool:
        """Take the job's lease; False when another worker holds it (or Redis is away)."""
        try:
            return bool(self.outage.call(lambda: self.conn.set(
                LEASE_PREFIX + job_id, holder, nx=True, px=int(self.lease_seconds * 1000))))
        except QueueUnavailable:
            return False

    def instance(self, job_id: str) -> bytes | None:
        try:
            data = self.outage.call(lambda: self.conn.get(INSTANCE_PREFIX + job_id))
        except QueueUnavailable:
            return None
        return bytes(data) if data is not None else None

    def release(self, job_id: str, holder: str) -> None:
        """Give the lease back if it is still ours."""
        key = LEASE_PREFIX + job_id

        def release() -> None:
            if self.conn.get(key) == holder.encode():
                self.conn.delete(key)
        try:
            self.outage.call(release)
        except QueueUnavailable:
            pass  # it expires by itself

    @contextmanager
    def holding(self, job_id: str, holder: str) -> Iterator[None]:
        """Renew the lease every third of ``lease_seconds`` while the block runs."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_seconds / 3):
                try:
                    self.outage.call(lambda: self.conn.pexpire(
                        LEASE_PREFIX + job_id, int(self.lease_seconds * 1000)))
                except QueueUnavailable:
                    pass

        thread = threading.Thread(target=renew, daemon=True, name=f"lease-{job_id[:8]}")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(5.0)
