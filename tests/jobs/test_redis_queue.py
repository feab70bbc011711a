"""The Redis queue against a real ``redis-server`` (started, killed, restarted and
flushed by the tests): outages are logged once, survived without tracebacks, and
no job is lost - the ledger re-queue gives every due job its message again."""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path

import pytest

from ecg_dicom.config import Settings
from ecg_dicom.jobs import Arrival, JobQueue, JobState, Spool, requeue_lost
from ecg_dicom.jobs.redis_queue import QueueOutage, QueueUnavailable
from redis_peer import RedisServer


def redis_queue(url: str, reconnect_max: float = 1.0) -> JobQueue:
    return JobQueue(Settings(queue={"backend": "redis", "redis_url": url,
                                    "redis_reconnect_max": reconnect_max}))


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ecg_dicom.queue"]


def test_backoff_doubles_to_the_cap_and_only_due_attempts_reach_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    now = [100.0]
    outage = QueueOutage("127.0.0.1:1/0", reconnect_max=4.0, clock=lambda: now[0])
    attempts: list[float] = []

    def refused() -> None:
        attempts.append(now[0])
        raise ConnectionRefusedError("refused")

    for t in (100.0, 100.1, 100.5, 101.0, 101.5, 103.5, 107.5, 110.0, 111.5):
        now[0] = t
        with pytest.raises(QueueUnavailable):
            outage.call(refused)
    # 0.5 s, then doubling up to the 4 s cap; the calls in between never touched Redis.
    assert attempts == [100.0, 100.5, 101.5, 103.5, 107.5, 111.5]
    now[0] = 115.5
    assert outage.call(lambda: "answer") == "answer" and not outage.down
    lines = outage_lines(caplog)
    assert [(r.levelname, r.exc_info) for r in lines] == [("WARNING", None), ("INFO", None)]
    assert "unreachable" in lines[0].getMessage()
    assert lines[1].getMessage().endswith("reachable again after 15.5 s")


def test_a_killed_redis_is_one_warning_no_traceback_and_calls_stay_fast(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = RedisServer(tmp_path / "redis").start()
    try:
        queue = redis_queue(server.url, reconnect_max=1.0)
        storage = queue.huey.storage
        assert queue.enqueue("job1") is True
        assert queue.queued_job_ids() == {"job1"}
        server.kill()
        calls = 0
        slowest = 0.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # what the listener, workers and scheduler do
            started = time.monotonic()
            assert queue.enqueue(f"job{calls}x") is False
            # huey's scheduler passes a datetime (a float fails in huey's convert_ts
            # when the guard lets a reconnect attempt through)
            assert storage.read_schedule(datetime.datetime.now()) == []
            assert queue.queued_job_ids() is None
            slowest = max(slowest, time.monotonic() - started)
            calls += 1
        assert storage.dequeue() is None  # a worker gets no work (after a short pause)
        ran: list[str] = []  # a task taken before the outage still runs, huey's own
        queue.set_handler(ran.append)  # bookkeeping around it (revocation keys) quietly
        queue.huey.execute(queue._task.s("taken"))
        assert ran == ["taken"]
        assert calls > 20 and slowest < 0.5, (calls, slowest)
        warnings = [r for r in outage_lines(caplog) if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

        server.start()  # back, empty, on the same port
        deadline = time.monotonic() + 5.0  # the next attempt is at most 1 s away
        while not queue.enqueue("after") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue.available and queue.queued_job_ids() == {"after"}
        back = [r for r in outage_lines(caplog) if "reachable again" in r.getMessage()]
        assert len(back) == 1
        assert len([r for r in outage_lines(caplog) if r.levelno >= logging.WARNING]) == 1
    finally:
        server.kill()


def test_the_ledger_requeue_gives_lost_messages_back_after_flushall(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    ids = []
    for i in range(3):
        job_id = spool.new_job_id()
        spool.record_received(job_id, Arrival("1.2.840.10008.5.1.4.1.1.9.1.1", f"1.2.3.{i}"))
        ids.append(job_id)
    waiting = ids[2]
    spool.update(waiting, state=JobState.WAITING, next_attempt_at=time.time() + 600)
    done = spool.new_job_id()
    spool.record_received(done, Arrival("1.2.840.10008.5.1.4.1.1.9.1.1", "1.2.3.9"))
    spool.update(done, state=JobState.DONE)
    later = time.time() + 60  # every job has settled
    with RedisServer(tmp_path / "redis") as server:
        queue = redis_queue(server.url)
        for job_id in ids:
            queue.enqueue(job_id)
        assert requeue_lost(spool, queue, now=later) == []  # nothing lost: no duplicate
        server.flushall()
        assert queue.queued_job_ids() == set()
        assert sorted(requeue_lost(spool, queue, now=later) or []) == sorted(ids)
        assert queue.queued_job_ids() == set(ids)
        (scheduled,) = [t for t in queue.huey.pending() if t.args == (waiting,)]
        assert scheduled.eta is not None  # the waiting job keeps its time, not "now"
        assert requeue_lost(spool, queue, now=later) == []
        server.kill()
        assert requeue_lost(spool, queue, now=later) is None  # unreadable: next round
