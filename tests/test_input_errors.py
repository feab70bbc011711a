"""Input errors are permanent at once, logged in one line without a traceback; only
unexpected errors are retried, their traceback logged once per job.

In-process, as tests/test_worker.py: a real spool, the real pipeline (page reader,
SR/SC builders), a stand-in detector and a queue that records what is queued again.
Each input is the real GE MAC 55 ECG with one thing wrong, the way a hostile or
broken sender writes it.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset

import ecg_dicom.results.build as results_build
from ecg_dicom.jobs import Job, JobState
from ecg_dicom.results import MAX_SEQUENCE_DEPTH
from test_worker import MAC55, StandInDetector, make_worker, receive, state

_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def nested_sequences(levels: int) -> bytes:
    """The MAC 55 ECG with an Original Attributes Sequence (0400,0561) nesting
    ``levels`` sequences (undefined lengths, explicit VR little endian), spliced in
    before the Waveform Sequence (5400,0100), where it belongs in tag order."""
    inner = b""
    for level in range(levels):
        tag = (0x0400, 0x0561) if level == levels - 1 else (0x0400, 0x0550)
        inner = (struct.pack("<HH", *tag) + b"SQ\0\0" + b"\xff\xff\xff\xff"
                 + _ITEM + inner + _ITEM_END + _SEQUENCE_END)
    raw = MAC55.read_bytes()
    at = raw.index(b"\x00\x54\x00\x01SQ")
    return raw[:at] + inner + raw[at:]


def edited(change: Callable[[Dataset], None]) -> bytes:
    ds = pydicom.dcmread(MAC55)
    change(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def without(keyword: str) -> Callable[[Dataset], None]:
    return lambda ds: delattr(ds, keyword)


def run_once(tmp_path: Path, data: bytes, caplog: pytest.LogCaptureFixture,
             detector: StandInDetector | None = None
             ) -> tuple[Job, list[tuple[str, float | None]], list[logging.LogRecord]]:
    """Receive ``data`` as the MAC 55 ECG, run its job once: the job, what was queued
    again, and the worker's log records."""
    worker, spool, queue = make_worker(tmp_path, detector or StandInDetector())
    job_id = receive(spool)
    spool.instance_path(job_id).write_bytes(data)
    with caplog.at_level(logging.INFO):
        worker.run_job(job_id)
    records = [r for r in caplog.records if r.name.startswith("ecg_dicom")]
    return state(spool, job_id), list(queue.queued), records


PERMANENT = [
    pytest.param(edited(without("StudyInstanceUID")),
                 "build: Study Instance UID (0020,000D) is missing or empty", id="no-study-uid"),
    pytest.param(edited(without("SeriesInstanceUID")),
                 "build: Series Instance UID (0020,000E) is missing or empty",
                 id="no-series-uid"),
    pytest.param(edited(lambda ds: setattr(ds, "SOPInstanceUID", "")),
                 "build: SOP Instance UID (0008,0018) is missing or empty", id="empty-sop-uid"),
    pytest.param(edited(lambda ds: setattr(ds, "StudyDate", "notadate")),
                 "build: Study Date (0008,0020) 'notadate' is not a valid date",
                 id="bad-study-date"),
    pytest.param(edited(lambda ds: setattr(ds, "StudyTime", "99999")),
                 "build: Study Time (0008,0030) '99999' is not a valid time", id="bad-study-time"),
    pytest.param(edited(lambda ds: setattr(ds, "PatientSex", "UNKNOWN")),
                 "build: Patient's Sex (0010,0040) 'UNKNOWN' is not M, F or O", id="bad-sex"),
    # Deeper than pydicom can read: the load stage.
    pytest.param(nested_sequences(200),
                 "load: received file cannot be read as DICOM: sequences nested too deeply",
                 id="sequences-200-deep"),
    # Readable, but deeper than the results copy: the build stage, the attribute named.
    pytest.param(nested_sequences(MAX_SEQUENCE_DEPTH + 1),
                 "build: Original Attributes Sequence (0400,0561) nests sequences more than "
                 f"{MAX_SEQUENCE_DEPTH} levels deep", id="sequences-too-deep-to-copy"),
]


@pytest.mark.parametrize(("data", "reason"), PERMANENT)
def test_input_error_fails_at_once_in_one_line_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: bytes, reason: str
) -> None:
    job, queued, records = run_once(tmp_path, data, caplog)
    assert job.state == JobState.FAILED, job.reason
    assert job.reason.startswith(reason), job.reason
    assert job.attempts == 1
    assert queued == []
    assert all(r.exc_info is None for r in records), [r.getMessage() for r in records]
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"job failed: {job.reason}"]


@pytest.mark.parametrize("charset", ["ISO 2022 IR 100", ["ISO_IR 100", "ISO_IR 100"]])
def test_a_character_set_highdicom_refuses_gives_utf8_results_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, charset: str | list[str]
) -> None:
    """Every string was decoded when read: the results declare UTF-8 (as for a
    character set highdicom cannot write) instead of failing in highdicom."""
    data = edited(lambda ds: setattr(ds, "SpecificCharacterSet", charset))
    job, queued, records = run_once(tmp_path, data, caplog)
    assert job.state == JobState.DONE, job.reason
    assert job.attempts == 1 and queued == []
    assert all(r.exc_info is None for r in records)
    assert any("is declared as ISO_IR 192" in r.getMessage() for r in records)


def test_nesting_up_to_the_limit_is_copied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job, queued, _ = run_once(tmp_path, nested_sequences(MAX_SEQUENCE_DEPTH), caplog)
    assert job.state == JobState.DONE, job.reason
    assert queued == []


def test_unexpected_error_is_retried_with_its_traceback_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker, spool, queue = make_worker(tmp_path, StandInDetector(error=TypeError("a bug")))
    job_id = receive(spool)
    with caplog.at_level(logging.INFO):
        for _ in range(3):  # queue.max_attempts
            worker.run_job(job_id)
    job = state(spool, job_id)
    assert job.state == JobState.FAILED and job.attempts == 3
    assert job.reason == "detect: TypeError: a bug"
    assert len(queue.queued) == 2
    errors = [r for r in caplog.records if r.name.startswith("ecg_dicom")
              and r.levelno >= logging.ERROR]
    assert [r.exc_info is not None for r in errors] == [True, False, False]
    assert "will retry" in errors[0].getMessage() and "a bug" in errors[1].getMessage()
    assert "job failed: detect: TypeError: a bug" in errors[2].getMessage()


def test_a_value_error_of_our_own_build_code_is_a_bug_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> Dataset:
        raise ValueError("our own mistake")

    monkeypatch.setattr(results_build, "build_sr", broken)
    job, queued, records = run_once(tmp_path, MAC55.read_bytes(), caplog)
    assert job.state == JobState.RECEIVED, job.reason
    assert job.reason == "build: ValueError: our own mistake"
    assert len(queued) == 1
    assert sum(r.exc_info is not None for r in records) == 1
