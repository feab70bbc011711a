"""Retention: finished jobs lose their files (by age, then by spool size); nothing else does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
import yaml

from ecg_dicom import audit
from ecg_dicom.config import RetentionSettings, Settings
from ecg_dicom.jobs import Arrival, JobState, Retention, Spool, not_retried_because
from ecg_dicom.jobs.retention import folder_bytes
from realdata import real_ecg_paths

DAY = 86400.0
MB = 1024**2
GB = 1024**3


def add_job(spool: Spool, source: Path, state: JobState, *, results: bool = True) -> str:
    """A job as the listener and worker leave it: the real ECG spooled, maybe its results."""
    job_id = spool.new_job_id()
    tmp = spool.tmp_dir / f"{job_id}.part"
    tmp.write_bytes(source.read_bytes())
    spool.adopt_file(job_id, tmp)
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    spool.record_received(job_id, Arrival(
        str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), "CART",
        "127.0.0.1", source.stat().st_size))
    if results:  # the SR and SC kept in the spool (their size is what matters here)
        folder = spool.results_path(job_id)
        folder.mkdir()
        (folder / "SC-1.dcm").write_bytes(os.urandom(200_000))
        (folder / "SR-1.dcm").write_bytes(os.urandom(20_000))
    spool.update(job_id, state=state, reason=f"{state} for the test")
    return job_id


def job_bytes(spool: Spool, job_id: str) -> int:
    files = [spool.instance_path(job_id), *spool.results_path(job_id).glob("*")]
    return sum(p.stat().st_size for p in files if p.is_file())


def has_files(spool: Spool, job_id: str) -> bool:
    return spool.instance_path(job_id).exists() or spool.results_path(job_id).exists()


def later(days: float) -> Callable[[], float]:
    return lambda: time.time() + days * DAY


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "audit.log"
    audit.configure(Settings(audit={"enabled": True, "path": str(path)}))
    yield path
    audit.shutdown()


def test_old_done_and_skipped_jobs_lose_their_files_never_the_others(
    tmp_path: Path, trail: Path
) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    sources = real_ecg_paths()
    jobs = {state: add_job(spool, sources[i % len(sources)], state)
            for i, state in enumerate(JobState)}
    finished = [jobs[JobState.DONE], jobs[JobState.SKIPPED]]
    expected = sum(job_bytes(spool, j) for j in finished)
    keep = RetentionSettings(inputs_days=30, outputs_days=0)

    # 29 days later nothing is old enough.
    assert Retention(spool, keep, clock=later(29)).sweep().files == 0
    assert all(has_files(spool, j) for j in jobs.values())

    held = folder_bytes(spool.instances_dir) + folder_bytes(spool.results_dir)
    report = Retention(spool, keep, clock=later(31)).sweep()
    assert (report.aged_jobs, report.aged_bytes, report.files) == (2, expected, 6)
    assert held - folder_bytes(spool.instances_dir) - folder_bytes(spool.results_dir) == expected
    for state, job_id in jobs.items():
        job = spool.get(job_id)
        assert job is not None and job.state == state  # the row stays, its state too
        if job_id in finished:
            assert not has_files(spool, job_id)
            assert "files removed by retention on" in job.reason
            assert job.reason.startswith(f"{state} for the test")
        else:
            assert has_files(spool, job_id), f"{state} lost its files"
            assert "retention" not in job.reason
    # A second sweep has nothing left to do.
    assert Retention(spool, keep, clock=later(31)).sweep().files == 0

    # Each removal is audited: DICOM Study Deleted, the Patient ID, no patient name.
    deleted = [ET.fromstring(line) for line in trail.read_text().splitlines()]
    assert len(deleted) == 2
    for message, job_id in zip(deleted, finished, strict=True):
        ident = message.find("EventIdentification")
        assert ident is not None and ident.get("EventActionCode") == "D"
        assert ident.find("EventID").get("csd-code") == "110105"  # type: ignore[union-attr]
        job = spool.get(job_id)
        assert job is not None
        assert job.sop_instance_uid in ET.tostring(message, encoding="unicode")
    patient_ids = {str(pydicom.dcmread(p, stop_before_pixels=True).get("PatientID", ""))
                   for p in sources}
    audited = {o.get("ParticipantObjectID") for m in deleted
               for o in m.findall("ParticipantObjectIdentification")
               if o.get("ParticipantObjectTypeCode") == "1"}
    assert audited and audited <= patient_ids
    names = {str(pydicom.dcmread(p, stop_before_pixels=True).get("PatientName", ""))
             for p in sources}
    text = trail.read_text()
    assert not [n for n in names if n and n in text]


def test_over_the_size_limit_the_oldest_finished_jobs_go_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    source = real_ecg_paths()[0]
    done = [add_job(spool, source, JobState.DONE) for _ in range(5)]
    failed = add_job(spool, source, JobState.FAILED)
    waiting = add_job(spool, source, JobState.DELIVERING)
    one_job = job_bytes(spool, done[0])
    # Room for everything but about two and a half jobs: the three oldest must go.
    total = Retention(spool, RetentionSettings(inputs_days=0)).sweep().spool_bytes_after
    limit = total - 2.5 * one_job
    keep = RetentionSettings(inputs_days=0, outputs_days=0, max_spool_gb=limit / GB)
    report = Retention(spool, keep).sweep()
    assert report.size_jobs == 3 and report.size_bytes == 3 * one_job
    assert [has_files(spool, j) for j in done] == [False, False, False, True, True]
    assert has_files(spool, failed) and has_files(spool, waiting)
    assert report.spool_bytes_after <= limit

    # With only failed and unfinished jobs' files left, they stay, whatever the limit.
    tiny = RetentionSettings(inputs_days=0, outputs_days=0, max_spool_gb=1 / GB)
    Retention(spool, tiny).sweep()
    assert has_files(spool, failed) and has_files(spool, waiting)


def test_kept_outputs_older_than_outputs_days_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    old, new = outputs / "SC-1.2.3.dcm", outputs / "SR-1.2.4.dcm"
    old.write_bytes(b"x" * 1000)
    new.write_bytes(b"y" * 10)
    stamp = time.time() - 8 * DAY
    os.utime(old, (stamp, stamp))
    keep = RetentionSettings(inputs_days=0, outputs_days=7)
    report = Retention(spool, keep, output_dir=outputs).sweep()
    assert (report.output_files, report.output_bytes) == (1, 1000)
    assert not old.exists() and new.exists()


def test_spool_clean_and_retry_of_a_cleaned_job_from_the_command_line(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, fsync=False)
    source = real_ecg_paths()[1]
    done = add_job(spool, source, JobState.DONE)
    failed = add_job(spool, source, JobState.FAILED)
    before = job_bytes(spool, done)
    site = tmp_path / "site.yaml"
    # inputs_days of ~0.09 s: the job is older than that once the command has started.
    site.write_text(yaml.safe_dump({
        "storage": {"spool_dir": str(spool_dir), "output_dir": str(tmp_path / "outputs"),
                    "retention": {"inputs_days": 1e-6, "outputs_days": 0}},
        "audit": {"path": str(tmp_path / "audit.log")},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECG_DICOM_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ecg_dicom", "--config", str(site), *args],
                              capture_output=True, text=True, env=env, timeout=120, check=False)

    cleaned = cli("spool", "clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"({before / MB:.1f} MB)" in cleaned.stdout and "files of 1 jobs" in cleaned.stdout
    assert not has_files(spool, done) and has_files(spool, failed)
    assert (tmp_path / "audit.log").read_text().count('csd-code="110105"') == 1

    listed = cli("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {j["job_id"]: j for j in json.loads(listed.stdout)}
    assert "files removed by retention" in rows[done]["reason"]

    retried = cli("jobs", "retry", done)
    assert retried.returncode == 1, retried.stderr  # 1: not every job asked for was queued
    assert "queued again: 0 job(s)" in retried.stdout
    assert "its input is gone, removed by retention" in retried.stderr
    assert not_retried_because(spool, done) in retried.stderr
