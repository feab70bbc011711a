"""queue.remote against a real ``redis-server``: the instance's bytes travel in Redis,
at most ``queue.window`` jobs at once; a worker's lease makes its job count as queued
until it expires; FLUSHALL loses nothing (the ledger hands the jobs out again); an
answer is taken once.  No model here: tests/service/test_remote_workers.py runs the
whole path with real worker processes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from ecg_dicom.config import Settings
from ecg_dicom.jobs import Arrival, JobQueue, JobState, Spool, requeue_lost
from ecg_dicom.jobs.remote_queue import INSTANCE_PREFIX, LEASE_PREFIX
from ecg_dicom.remote import Handouts
from ecg_dicom.worker import Worker
from redis_peer import RedisServer

WINDOW = 3


def remote_settings(url: str, spool: Path, **queue: object) -> Settings:
    return Settings(
        queue={"backend": "redis", "redis_url": url, "remote": True, "window": WINDOW,
               "lease_seconds": 1.0, "redis_reconnect_max": 1.0, **queue},
        storage={"spool_dir": str(spool), "output_dir": str(spool.parent / "out"),
                 "min_free_mb": 0},
    )


def listener(settings: Settings) -> tuple[Spool, JobQueue, Handouts]:
    spool = Spool(settings.storage.spool_dir, fsync=False)
    queue = JobQueue(settings)
    handouts = Handouts(spool, queue, Worker(settings, spool, queue))
    queue.set_remote(handout=handouts.handout, intake=handouts.take_answer)
    return spool, queue, handouts


def receive(spool: Spool, count: int) -> list[str]:
    ids = []
    for i in range(count):
        job_id = spool.new_job_id()
        spool.instance_path(job_id).write_bytes(f"DICM bytes of ECG {i}".encode() * 100)
        spool.record_received(job_id, Arrival("1.2.840.10008.5.1.4.1.1.9.1.1", f"1.2.3.{i}",
                                              "1.2.3", calling_ae="CART"))
        ids.append(job_id)
    return ids


def test_bytes_travel_in_redis_within_the_window_leases_hold_jobs_and_flushall_loses_none(
    tmp_path: Path,
) -> None:
    with RedisServer(tmp_path / "redis") as server:
        settings = remote_settings(server.url, tmp_path / "spool")
        spool, queue, _ = listener(settings)
        ids = receive(spool, 5)
        for job_id in ids:
            assert queue.enqueue(job_id)
        client = server.client()
        handed = {k.decode()[len(INSTANCE_PREFIX):] for k in client.scan_iter(INSTANCE_PREFIX
                                                                                + "*")}
        # The window: 3 of 5 are in Redis, the other 2 wait in the ledger.
        assert len(handed) == WINDOW and handed <= set(ids)
        assert queue.queued_job_ids() == handed
        assert client.get(INSTANCE_PREFIX + ids[0]) == spool.instance_path(ids[0]).read_bytes()
        # A worker host: its own settings and folder, nothing of the listener's spool.
        host = JobQueue(remote_settings(server.url, tmp_path / "host-spool"))
        assert host.remote is not None
        message = host.work.storage.dequeue()  # taken by a worker...
        assert message is not None
        task = host.work.deserialize_task(message)
        job_id, facts = task.args
        assert facts["slot"] == facts["attempts"] == 0 and facts["history"] is None
        assert host.remote.take(job_id, "host-a:1")
        assert not host.remote.take(job_id, "host-b:2")  # a duplicate finds it held
        assert host.remote.instance(job_id) == spool.instance_path(job_id).read_bytes()
        # ...counts as queued while its lease lives (no second hand-out); the place it
        # left in the window goes to the next job waiting in the ledger...
        assert job_id == ids[0] and job_id in (queue.queued_job_ids() or set())
        assert requeue_lost(spool, queue, settle=0.0) == [ids[3]]
        # ...and it is handed out again once the lease expires (the worker died), first
        # in line when a place is free (another worker took the next message).
        time.sleep(1.3)
        assert client.get(LEASE_PREFIX + job_id) is None
        taken = host.work.deserialize_task(host.work.storage.dequeue())
        assert host.remote.take(taken.args[0], "host-b:2")
        assert requeue_lost(spool, queue, settle=0.0) == [job_id]
        # FLUSHALL: messages, bytes and leases gone; the ledger hands out the window again.
        server.flushall()
        again = requeue_lost(spool, queue, settle=0.0)
        assert again is not None and len(again) == WINDOW
        assert queue.queued_job_ids() == set(again)
        assert {j.state for j in spool.list_jobs()} == {JobState.RECEIVED}


def test_an_answer_is_taken_once_and_a_second_one_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with RedisServer(tmp_path / "redis") as server:
        settings = remote_settings(server.url, tmp_path / "spool")
        spool, queue, handouts = listener(settings)
        (job_id,) = receive(spool, 1)
        assert queue.remote is not None
        assert queue.remote.take(job_id, "host-a:1")  # left by the worker with its answer...
        answer = {"kind": "failed", "stage": "load", "reason": "load: not a DICOM file",
                  "worker": "host-a:1"}
        handouts.take_answer(job_id, answer)
        job = spool.get(job_id)
        assert job is not None and job.state == JobState.FAILED
        assert job.reason == "load: not a DICOM file" and job.attempts == 1
        client = server.client()
        assert client.get(LEASE_PREFIX + job_id) is None  # ...ended once the answer is claimed
        assert queue.remote.take(job_id, "host-b:2")  # a second reader's answer is dropped
        handouts.take_answer(job_id, {**answer, "reason": "other", "worker": "host-b:2"})
        job = spool.get(job_id)
        assert job is not None and job.reason == "load: not a DICOM file"
        assert client.get(LEASE_PREFIX + job_id) == b"host-b:2"  # its lease left to expire
        assert "an answer for a job already answered was dropped (from host-b:2)" in caplog.text
        # A bug on the worker: the job is read again (attempts count), not failed.
        (retried,) = receive(spool, 1)
        handouts.take_answer(retried, {"kind": "error", "stage": "detect",
                                        "reason": "detect: RuntimeError: boom"})
        job = spool.get(retried)
        assert job is not None and job.state == JobState.RECEIVED and job.attempts == 1
