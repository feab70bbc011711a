"""The spool ledger: durable files, atomic state changes, recovery after a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ecg_dicom.errors import StorageError
from ecg_dicom.jobs import Arrival, JobState, Spool


def arrived(spool: Spool, data: bytes) -> Path:
    """A data set as pynetdicom leaves it: a file in the spool's tmp/ folder."""
    path = spool.tmp_dir / f"tmp{spool.new_job_id()}.dcm"
    path.write_bytes(data)
    return path


def received(spool: Spool, data: bytes = b"x" * 10, uid: str = "1.2.3") -> str:
    job_id = spool.new_job_id()
    spool.adopt_file(job_id, arrived(spool, data))
    spool.record_received(job_id, Arrival("1.2.840.10008.5.1.4.1.1.9.1.1", uid,
                                          calling_ae="CART", size=len(data)))
    return job_id


def test_received_instance_is_stored_and_recorded(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    job_id = received(spool, b"DICOM bytes")
    assert spool.instance_path(job_id).read_bytes() == b"DICOM bytes"
    assert list(spool.tmp_dir.iterdir()) == []
    job = spool.get(job_id)
    assert job is not None and job.state == JobState.RECEIVED and job.calling_ae == "CART"
    assert spool.counts()[JobState.RECEIVED] == 1


def test_claim_is_atomic_and_refuses_duplicates(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    job_id = received(spool)
    assert spool.claim(job_id, (JobState.RECEIVED,), JobState.PROCESSING) is not None
    # A duplicate queue message:
    assert spool.claim(job_id, (JobState.RECEIVED,), JobState.PROCESSING) is None
    spool.update(job_id, state=JobState.DONE, result={"label": "Normal"})
    assert spool.get(job_id).result == {"label": "Normal"}  # type: ignore[union-attr]


def test_recover_requeues_everything_unfinished(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ids = [received(spool, uid=f"1.2.{i}") for i in range(5)]
    spool.claim(ids[1], (JobState.RECEIVED,), JobState.PROCESSING)  # crashed while processing
    spool.update(ids[2], state=JobState.DELIVERING)  # crashed while sending
    spool.update(ids[3], state=JobState.DONE)
    spool.update(ids[4], state=JobState.FAILED, reason="bad input")
    # A fresh Spool on the same folder, as after a restart:
    again = Spool(tmp_path)
    assert sorted(again.recover()) == sorted(ids[:3])
    assert again.get(ids[1]).state == JobState.RECEIVED  # type: ignore[union-attr]
    # Cut short while sending: waiting for its destination, due at once.
    crashed = again.get(ids[2])
    assert crashed is not None and crashed.state == JobState.WAITING
    assert crashed.next_attempt_at <= time.time()


def test_partial_transfers_are_cleaned_at_start(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (spool.tmp_dir / "tmpabc.dcm").write_bytes(b"half a file")
    assert spool.clean_tmp() == 1
    assert list(spool.tmp_dir.iterdir()) == []


def test_job_ids_cannot_name_paths_outside_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for bad in ("../../etc/passwd", "a/b", "..", ""):
        with pytest.raises(ValueError):
            spool.instance_path(bad)
        with pytest.raises(ValueError):
            spool.results_path(bad)


def test_full_disk_reserve_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, min_free_mb=10**9)  # more than any disk has
    with pytest.raises(StorageError, match="min_free_mb"):
        spool.check_free_space()


def test_failed_write_raises_storage_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    job_id = spool.new_job_id()
    spool.instance_path(job_id).mkdir()  # the rename target cannot be replaced
    with pytest.raises(StorageError):
        spool.adopt_file(job_id, arrived(spool, b"x"))


def test_skipped_is_terminal_with_its_reason_and_keeps_no_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    job_id = spool.new_job_id()
    spool.record_skipped(
        job_id,
        Arrival("1.2.840.10008.5.1.4.1.1.88.34", "1.2.9", study_instance_uid="1.2.8",
                calling_ae="PACS", peer_address="127.0.0.1", size=1234),
        reason="skipped: Comprehensive 3D SR Storage is not an ECG input",
    )
    job = spool.get(job_id)
    assert job is not None and job.state == JobState.SKIPPED and job.size == 1234
    assert job.reason == "skipped: Comprehensive 3D SR Storage is not an ECG input"
    assert not spool.instance_path(job_id).exists()
    # A job the worker ends as skipped (e.g. a Hemodynamic object without ECG leads).
    read = received(spool, uid="1.2.10")
    spool.update(read, state=JobState.SKIPPED, reason="skipped: render: not an ECG")
    assert spool.counts()[JobState.SKIPPED] == 2
    assert [j.job_id for j in spool.list_jobs(JobState.SKIPPED)] == [read, job_id]
    assert Spool(tmp_path).recover() == []  # never taken up again after a restart
