"""The worker's state machine, in-process: ledger states, attempts, retries, delivery.

A real spool in ``tmp_path``, the real pipeline (real page reader, real SR/SC
builders) and, for delivery, a real dcmtk ``storescp`` or a closed port.  Two
things are replaced, because a real one is not the point here: the queue records
what the worker enqueues (and with which delay) instead of scheduling it, and the
detector is a small stand-in whose answer comes from the real decision rule
(``decide``) on boxes the test chooses, or which raises the error a test needs.
The service's own model runs in tests/service and tests/e2e.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest

from ecg_dicom.config import Destination, Settings
from ecg_dicom.errors import ModelError
from ecg_dicom.jobs import Arrival, JobState, Spool, retry_failed
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.sop import SECONDARY_CAPTURE
from ecg_dicom.worker import Worker
from peers import free_port, run_storescp
from realdata import DICOM_ECG_DIR
from stand_ins import StandInDetector

MAC55 = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"


class FakeQueue:
    """Records what the worker queues again: (job id, delay)."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, float | None]] = []

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        self.queued.append((job_id, delay))


def make_worker(
    tmp_path: Path, detector: StandInDetector, **delivery: Any
) -> tuple[Worker, Spool, FakeQueue]:
    settings = Settings(
        storage={"spool_dir": tmp_path / "spool", "output_dir": tmp_path / "out",
                 "min_free_mb": 0},
        queue={"max_attempts": 3},
        delivery={"backoff_initial": 2.0, "backoff_max": 8.0, "timeout": 10.0, **delivery},
    )
    spool = Spool(settings.storage.spool_dir, fsync=False)
    queue = FakeQueue()
    pipeline = Pipeline(settings, detector=detector)  # type: ignore[arg-type]
    return Worker(settings, spool, queue, pipeline), spool, queue  # type: ignore[arg-type]


def receive(spool: Spool, source: Path = MAC55, calling_ae: str = "CART") -> str:
    """What the listener does for one acknowledged instance: file, then ledger row."""
    job_id = spool.new_job_id()
    shutil.copyfile(source, spool.instance_path(job_id))
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    spool.record_received(job_id, Arrival(
        str(ds.SOPClassUID), str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID), calling_ae=calling_ae,
    ))
    return job_id


def state(spool: Spool, job_id: str) -> Any:
    job = spool.get(job_id)
    assert job is not None
    return job


def test_no_destination_ends_done_with_the_reason_and_a_kept_copy(tmp_path: Path) -> None:
    worker, spool, queue = make_worker(tmp_path, StandInDetector("ECG HB"))
    job_id = receive(spool)
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.DONE
    assert job.reason.startswith("not sent: no destination configured for calling AE 'CART'")
    assert job.result["label"] == "Abnormal" and job.result["class_name"] == "ECG HB"
    kept = sorted(p.name for p in spool.results_path(job_id).glob("*.dcm"))
    assert len(kept) == 2, kept
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2
    assert queue.queued == []


def test_unreadable_instance_fails_at_once_without_retry(tmp_path: Path) -> None:
    detector = StandInDetector()
    worker, spool, queue = make_worker(tmp_path, detector)
    job_id = receive(spool)
    spool.instance_path(job_id).write_bytes(b"not DICOM at all" * 10)
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.FAILED
    assert job.reason.startswith("load: received file cannot be read as DICOM")
    assert job.attempts == 1 and queue.queued == [] and detector.calls == 0


def test_unexpected_error_is_retried_then_fails_naming_the_stage(tmp_path: Path) -> None:
    worker, spool, queue = make_worker(tmp_path, StandInDetector(error=RuntimeError("boom")))
    job_id = receive(spool)
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.RECEIVED and job.attempts == 1
    assert job.reason == "detect: RuntimeError: boom"
    assert queue.queued == [(job_id, 1.0)]
    worker.run_job(job_id)
    assert queue.queued[-1] == (job_id, 2.0)  # backoff doubles
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.FAILED and job.attempts == 3
    assert job.reason == "detect: RuntimeError: boom"
    assert len(queue.queued) == 2


def test_model_unavailable_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    worker, spool, queue = make_worker(tmp_path, StandInDetector(error=ModelError("no weights")))
    job_id = receive(spool)
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.FAILED
    assert job.reason == "detect: model unavailable: no weights"
    assert queue.queued == []


def test_a_finished_job_is_not_taken_again(tmp_path: Path) -> None:
    detector = StandInDetector()
    worker, spool, _ = make_worker(tmp_path, detector)
    job_id = receive(spool)
    worker.run_job(job_id)
    worker.run_job(job_id)  # a duplicate queue message
    assert detector.calls == 1
    assert state(spool, job_id).state == JobState.DONE


def test_unreachable_pacs_waits_with_capped_backoff_then_fails_after_the_window(
    tmp_path: Path,
) -> None:
    closed = Destination(ae_title="PACS", host="127.0.0.1", port=free_port())
    worker, spool, queue = make_worker(  # a window of 36 s, backoff 2 s doubling up to 8 s
        tmp_path, StandInDetector(), fixed_destinations=[closed], retry_window_hours=0.01
    )
    now = [time.time()]
    worker.clock = lambda: now[0]
    job_id = receive(spool)
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.WAITING and job.delivery_attempts == 1
    assert job.reason.startswith("waiting for destination: send attempt 1 failed")
    assert job.waiting_since == now[0] and job.next_attempt_at == now[0] + 2.0
    assert queue.queued == [(job_id, 2.0)]
    worker.run_job(job_id)  # a duplicate message before the time: put off, nothing sent
    assert state(spool, job_id).delivery_attempts == 1
    assert queue.queued[-1][0] == job_id and queue.queued[-1][1] == pytest.approx(2.0)
    for attempt, delay in ((2, 4.0), (3, 8.0), (4, 8.0)):
        now[0] = job.next_attempt_at  # the queued retry: from the kept objects
        worker.run_job(job_id)
        job = state(spool, job_id)
        assert (job.state, job.delivery_attempts) == (JobState.WAITING, attempt)
        assert queue.queued[-1] == (job_id, delay)
        assert job.next_attempt_at == now[0] + delay
    now[0] = job.waiting_since + 36.0  # the window is over
    worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.FAILED and job.delivery_attempts == 5
    assert job.reason.startswith("send: could not associate with PACS@127.0.0.1")
    assert "(transient; the destination could not be reached for 0.01 h, 5 attempts" in job.reason
    # ``jobs retry`` sends the kept SR and SC again, without processing the ECG again,
    # in a new window.
    assert retry_failed(spool, queue, [job_id]) == [job_id]  # type: ignore[arg-type]
    job = state(spool, job_id)
    assert job.state == JobState.WAITING and job.waiting_since == 0.0
    assert job.next_attempt_at <= time.time()


def test_a_destination_down_is_probed_by_one_job_the_others_wait_and_are_woken(
    tmp_path: Path,
) -> None:
    port = free_port()  # the PACS is down
    pacs = Destination(ae_title="PACS", host="127.0.0.1", port=port)
    worker, spool, queue = make_worker(tmp_path, StandInDetector(), fixed_destinations=[pacs],
                                       backoff_initial=60.0, backoff_max=600.0)
    now = [time.time()]
    worker.clock = lambda: now[0]
    first = receive(spool)
    second = receive(spool, DICOM_ECG_DIR / "ge-muse-mv360" / "ecg.dcm")
    worker.run_job(first)  # tries, fails: the destination is known down for 60 s
    assert state(spool, first).delivery_attempts == 1
    worker.run_job(second)  # does not spend an attempt on it: waits for the probe
    job = state(spool, second)
    assert job.state == JobState.WAITING and job.delivery_attempts == 0
    assert f"PACS@127.0.0.1:{port} is unreachable; another job is trying it" in job.reason
    assert job.next_attempt_at == now[0] + 60.0 and queue.queued[-1] == (second, 60.0)
    with run_storescp(tmp_path / "pacs", aetitle="PACS", port=port):
        now[0] = state(spool, first).next_attempt_at
        worker.run_job(first)  # the probe gets through...
        assert state(spool, first).state == JobState.DONE
        assert queue.queued[-1] == (second, None)  # ...and wakes the waiting job at once
        assert state(spool, second).next_attempt_at == now[0]
        worker.run_job(second)
    job = state(spool, second)
    assert job.state == JobState.DONE and job.delivery_attempts == 1
    assert len([p for p in (tmp_path / "pacs").rglob("*") if p.is_file()]) == 4


def test_a_silent_pacs_costs_one_timeout_per_round_not_one_per_job(tmp_path: Path) -> None:
    """A PACS whose host takes the connection and never answers (a hung peer, a
    firewall) costs ``delivery.timeout`` per attempt: the other jobs do not pay it too."""
    with socket.socket() as silent:  # accepts (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        pacs = Destination(ae_title="PACS", host="127.0.0.1", port=silent.getsockname()[1])
        worker, spool, _ = make_worker(tmp_path, StandInDetector(), fixed_destinations=[pacs],
                                       timeout=2.0)
        jobs = [receive(spool, DICOM_ECG_DIR / name / "ecg.dcm")
                for name in ("ge-mac55", "ge-muse-mv360", "ecgtoolkit-eli250")]
        for job_id in jobs:
            worker.run_job(job_id)
    found = [state(spool, job_id) for job_id in jobs]
    assert [j.state for j in found] == [JobState.WAITING] * 3
    assert [j.delivery_attempts for j in found] == [1, 0, 0]
    assert "timed out" in found[0].reason
    assert all("another job is trying it" in j.reason for j in found[1:])


def test_delivery_to_a_real_scp_records_what_the_pacs_holds(tmp_path: Path) -> None:
    with run_storescp(tmp_path / "pacs", aetitle="PACS") as (port, _):
        pacs = Destination(ae_title="PACS", host="127.0.0.1", port=port)
        worker, spool, queue = make_worker(tmp_path, StandInDetector(), fixed_destinations=[pacs])
        job_id = receive(spool)
        worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.DONE, job.reason
    assert job.reason == f"sent to PACS@127.0.0.1:{port}"
    received = [pydicom.dcmread(p) for p in sorted((tmp_path / "pacs").rglob("*")) if p.is_file()
                and not p.name.endswith(".log")]
    assert len(received) == 2
    (sc,) = [d for d in received if d.Modality != "SR"]
    assert sc.SOPClassUID == SECONDARY_CAPTURE
    sr = next(d for d in received if d.Modality == "SR")
    assert job.result["outputs"]["sr"] == str(sr.SOPInstanceUID)
    source = pydicom.dcmread(MAC55, stop_before_pixels=True)
    history = spool.result_history(str(source.StudyInstanceUID), str(source.SOPInstanceUID))
    assert history is not None and history.built_sr == str(sr.SOPInstanceUID)
    assert queue.queued == []


@pytest.mark.parametrize("state_name", ["processing", "done", "failed", "skipped"])
def test_only_received_jobs_are_claimed_for_processing(tmp_path: Path, state_name: str) -> None:
    detector = StandInDetector()
    worker, spool, _ = make_worker(tmp_path, detector)
    job_id = receive(spool)
    spool.update(job_id, state=JobState(state_name))
    worker.run_job(job_id)
    assert detector.calls == 0
    assert state(spool, job_id).state == JobState(state_name)
