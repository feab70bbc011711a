"""The Redis queue, made to live through Redis outages (``queue.backend: redis``).

Redis going away (stopped, restarted, unreachable) must neither lose an
acknowledged ECG nor flood the log.  The ledger already holds every job, so the
queue only has to fail quietly and come back by itself:

* :class:`QueueOutage` notes the first failed call of an outage, logs ONE warning
  line, and from then on lets a real call reach Redis only once per backoff delay
  (doubling from :data:`FIRST_RETRY` up to ``queue.redis_reconnect_max``); the
  other calls fail at once without touching the network.  The first call that
  succeeds again logs ONE line saying Redis is back.
* :class:`GuardedRedisStorage` is huey's Redis storage with every call the
  service makes going through it (huey's own bookkeeping around a task run, its
  revocation keys, included): enqueueing during an outage drops the message
  (the job stays ``received`` or ``waiting`` in the ledger, and
  :func:`ecg_dicom.jobs.retry.requeue_lost` queues it again once Redis answers),
  a worker asking for work gets none (after a short pause, so it does not spin),
  the scheduler finds nothing due.  No traceback reaches the log.

A Redis restarted empty, or flushed (``FLUSHALL``), is the same case as messages
dropped during an outage: the ledger re-queue finds the jobs without a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from huey.constants import EmptyData
from huey.storage import RedisStorage
from redis import ConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger("ecg_dicom.queue")

#: Seconds before the second attempt to reach a lost Redis (then doubling).
FIRST_RETRY = 0.5
#: Longest pause of a worker asking for work while Redis is away (bounds shutdown).
IDLE_PAUSE = 0.5
#: Seconds to open a connection to Redis / to wait for any answer beyond a blocking read.
CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = 5.0
#: The errors that mean "Redis cannot be reached now" (everything else is a bug).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, OSError,
)

T = TypeVar("T")


class QueueUnavailable(Exception):
    """The queue cannot be reached now (the call was not made, or failed)."""


class QueueOutage:
    """One outage at a time: when it began, and when Redis may be tried again."""

    def __init__(self, where: str, reconnect_max: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.where = where
        self.reconnect_max = reconnect_max
        self.clock = clock
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._delay = FIRST_RETRY
        self._next_try = 0.0
        #: Outages seen since start (each logged once).
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def wait_left(self) -> float:
        """Seconds until Redis may be tried again (0: now)."""
        with self._lock:
            if self.down_since is None:
                return 0.0
            return max(0.0, self._next_try - self.clock())

    def call(self, action: Callable[[], T]) -> T:
        """Run ``action`` against Redis, or raise :class:`QueueUnavailable` at once
        while the outage's next attempt is not due (one caller takes each attempt)."""
        with self._lock:
            if self.down_since is not None:
                now = self.clock()
                if now < self._next_try:
                    raise QueueUnavailable(f"Redis at {self.where} is unreachable")
                # This caller makes the attempt; the others wait for its outcome.
                self._next_try = now + self._delay
        try:
            result = action()
        except OUTAGE_ERRORS as exc:
            self._failed(exc)
            raise QueueUnavailable(f"Redis at {self.where} is unreachable: {exc}") from None
        if self.down_since is not None:
            self._back()
        return result

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            now = self.clock()
            if self.down_since is None:
                self.down_since = now
                self.outages += 1
                self._delay = FIRST_RETRY
                log.warning(
                    "queue: Redis at %s is unreachable (%s: %s); acknowledged ECGs stay in "
                    "the ledger and are queued again when it is back; trying again every "
                    "%.0f s at most", self.where, type(exc).__name__, exc, self.reconnect_max,
                    extra={"redis": self.where},
                )
            else:
                self._delay = min(self.reconnect_max, self._delay * 2)
            self._next_try = now + self._delay

    def _back(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            lasted = self.clock() - self.down_since
            self.down_since = None
            self._delay = FIRST_RETRY
        log.info("queue: Redis at %s is reachable again after %.1f s", self.where, lasted,
                 extra={"redis": self.where, "outage_seconds": round(lasted, 1)})


def redis_pool(url: str, read_timeout: float) -> ConnectionPool:
    """A connection pool that fails fast: no silent retries inside redis-py (the
    outage's own backoff decides), short connect timeout, answers awaited a little
    longer than a blocking read."""
    return ConnectionPool.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=read_timeout + ANSWER_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


class GuardedRedisStorage(RedisStorage):
    """huey's Redis storage whose calls go through one :class:`QueueOutage`."""

    outage: QueueOutage

    def __init__(self, name: str = "huey", *, url: str, reconnect_max: float,
                 read_timeout: float = 1.0, **kwargs: Any) -> None:
        # huey passes blocking/read_timeout/... as keywords; the pool is ours.
        kwargs.pop("connection_pool", None)
        read_timeout = float(kwargs.pop("read_timeout", read_timeout))
        super().__init__(name, connection_pool=redis_pool(url, read_timeout),
                         read_timeout=read_timeout, **kwargs)
        where = url.split("@", 1)[1] if "@" in url else url.split("://", 1)[-1]
        self.outage = QueueOutage(where, reconnect_max)

    # -- producers: a message that cannot be written is left to the ledger ------
    def enqueue(self, data: bytes, priority: Any = None) -> None:
        try:
            self.outage.call(lambda: super(GuardedRedisStorage, self).enqueue(data, priority))
        except QueueUnavailable:
            pass  # the job is in the ledger; requeue_lost makes its message again

    def add_to_schedule(self, data: bytes, ts: Any) -> None:
        try:
            self.outage.call(lambda: super(GuardedRedisStorage, self).add_to_schedule(data, ts))
        except QueueUnavailable:
            pass

    # -- consumers: no work while Redis is away ---------------------------------
    def dequeue(self) -> bytes | None:
        wait = self.outage.wait_left()
        if wait > 0:
            time.sleep(min(wait, IDLE_PAUSE))
            return None
        try:
            data: bytes | None = self.outage.call(super().dequeue)
        except QueueUnavailable:
            time.sleep(IDLE_PAUSE)
            return None
        return data

    def read_schedule(self, ts: Any) -> list[bytes]:
        try:
            due: list[bytes] = self.outage.call(lambda: super(GuardedRedisStorage,
                                                              self).read_schedule(ts))
        except QueueUnavailable:
            return []
        return due

    # -- task bookkeeping around each run (revocation keys): nothing while away ----
    def peek_data(self, key: Any) -> Any:
        try:
            return self.outage.call(lambda: super(GuardedRedisStorage, self).peek_data(key))
        except QueueUnavailable:
            return EmptyData  # not revoked: the job runs (the ledger decides)

    def peek_many(self, keys: Any) -> Any:
        try:
            return self.outage.call(lambda: super(GuardedRedisStorage, self).peek_many(keys))
        except QueueUnavailable:
            return {}

    def pop_data(self, key: Any) -> Any:
        try:
            return self.outage.call(lambda: super(GuardedRedisStorage, self).pop_data(key))
        except QueueUnavailable:
            return EmptyData

    def delete_data(self, key: Any) -> bool:
        try:
            return bool(self.outage.call(
                lambda: super(GuardedRedisStorage, self).delete_data(key)))
        except QueueUnavailable:
            return False

    def put_data(self, key: Any, value: Any, is_result: bool = False) -> None:
        try:
            self.outage.call(
                lambda: super(GuardedRedisStorage, self).put_data(key, value, is_result))
        except QueueUnavailable:
            pass

    # -- what the ledger re-queue reads: raises QueueUnavailable -----------------
    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        items: list[bytes] = self.outage.call(
            lambda: super(GuardedRedisStorage, self).enqueued_items(limit))
        return items

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        items: list[bytes] = self.outage.call(
            lambda: super(GuardedRedisStorage, self).scheduled_items(limit))
        return items

    def queue_size(self) -> int:
        size: int = self.outage.call(super().queue_size)
        return size

    def schedule_size(self) -> int:
        size: int = self.outage.call(super().schedule_size)
        return size
