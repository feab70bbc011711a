"""The ledger behind ``/api/jobs``: the viewer's columns, an old ledger's upgrade, and
filtered keyset pages that neither skip nor repeat a job.

A real SQLite ledger in ``tmp_path``; rows are written by the same calls the listener
and the worker make (``record_received``, ``update``), then their received times are
set apart so the order is known.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from asgi_client import AsgiClient
from test_api import RecordingQueue

from ecg_dicom.config import Settings
from ecg_dicom.jobs import Arrival, JobQuery, JobState, Spool
from ecg_dicom.jobs.ledger import JOBS_SCHEMA
from ecg_dicom.web import create_app
from ecg_dicom.web.jobs_view import day_start
from stand_ins import StandInDetector

#: The result dicts the worker records (only what the viewer reads of them).
RESULTS = {
    "Normal": {"label": "Normal", "probability": 0.93, "class_name": "Normal-ECG"},
    "Abnormal": {"label": "Abnormal", "probability": 0.81, "class_name": "History_MI"},
    "Not interpretable": {"label": "Not interpretable", "probability": None,
                          "class_name": None},
}


def fill(spool: Spool, count: int, start: float) -> list[str]:
    """``count`` jobs received one minute apart from ``start``: every third Normal, every
    third Abnormal, the rest without result; patients P0000.. named DOE^JANE<i>."""
    ids = []
    for i in range(count):
        job_id = spool.new_job_id()
        spool.record_received(job_id, Arrival(
            "1.2.840.10008.5.1.4.1.1.9.1.1", f"1.2.3.{i}", study_instance_uid=f"1.2.9.{i}",
            calling_ae="CART" if i % 2 else "MUSE", patient_name=f"DOE^JANE{i}",
            patient_id=f"P{i:04d}", study_date="20261201",
        ))
        if i % 3 < 2:
            label = "Normal" if i % 3 == 0 else "Abnormal"
            spool.update(job_id, state=JobState.DELIVERING, result=RESULTS[label])
            spool.update(job_id, state=JobState.DONE, reason="sent to PACS@10.1.1.1:104")
        ids.append(job_id)
    with sqlite3.connect(spool.ledger_path) as db:
        db.executemany("UPDATE jobs SET received_at=? WHERE job_id=?",
                       [(start + 60.0 * i, job_id) for i, job_id in enumerate(ids)])
    return ids


def walk(spool: Spool, query: JobQuery) -> list[str]:
    """Every job of a query, page by page (keyset)."""
    seen: list[str] = []
    while True:
        jobs, after, total = spool.page(query)
        seen += [j.job_id for j in jobs]
        if after is None:
            return seen
        assert len(jobs) == query.limit
        query = JobQuery(**{**query.__dict__, "before": after})


def test_pages_in_received_order_never_skip_nor_repeat(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    ids = fill(spool, 130, start=time.time() - 86400)
    newest_first = ids[::-1]
    assert walk(spool, JobQuery(limit=50)) == newest_first
    assert walk(spool, JobQuery(limit=7)) == newest_first
    abnormal = [j for i, j in enumerate(ids) if i % 3 == 1][::-1]
    assert walk(spool, JobQuery(label="Abnormal", limit=10)) == abnormal
    assert walk(spool, JobQuery(label="", limit=10)) == [
        j for i, j in enumerate(ids) if i % 3 == 2][::-1]
    jobs, _, total = spool.page(JobQuery(state="done", label="Normal", text="cart", limit=200))
    assert total == len(jobs) == len([i for i in range(130) if i % 3 == 0 and i % 2])
    # Case-insensitive substring of the name, as people type it.
    [jane] = spool.page(JobQuery(text="doe jane17"))[0]
    assert jane.job_id == ids[17] and jane.patient_id == "P0017"
    assert spool.page(JobQuery(text=ids[42][5:20]))[0][0].job_id == ids[42]
    assert spool.page(JobQuery(text="1.2.9.99"))[0][0].job_id == ids[99]


def test_date_filter_takes_whole_local_days(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    midnight = day_start("2026-11-30")
    ids = fill(spool, 4, start=midnight - 90)  # 23:58:30, 23:59:30, 00:00:30, 00:01:30
    day = JobQuery(received_from=day_start("2026-11-30"),
                   received_to=day_start("2026-11-30", after=True))
    assert walk(spool, day) == ids[:1:-1]


def test_viewer_columns_follow_the_worker_updates(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    [job_id] = fill(spool, 1, start=time.time())
    job = spool.get(job_id)
    assert job is not None
    assert (job.label, job.class_name, job.delivery, job.destination) == (
        "Normal", "Normal-ECG", "sent", "PACS@10.1.1.1:104")
    spool.update(job_id, state=JobState.WAITING, reason=(
        "waiting for destination: send attempt 1 failed (could not connect to "
        "ARCHIVE@10.2.2.2:11112: refused); next try in 30 s"))
    job = spool.get(job_id)
    assert job is not None and (job.delivery, job.destination) == (
        "waiting", "ARCHIVE@10.2.2.2:11112")
    spool.update(job_id, state=JobState.DONE, reason="not sent: no destination configured")
    job = spool.get(job_id)
    assert job is not None and (job.delivery, job.destination) == ("not sent", "")
    spool.update(job_id, state=JobState.FAILED, reason="render: no waveform")
    job = spool.get(job_id)
    assert job is not None and job.delivery == ""
    # retry moves it by claim: the delivery state follows the new state
    assert spool.claim(job_id, (JobState.FAILED,), JobState.WAITING) is not None
    job = spool.get(job_id)
    assert job is not None and job.delivery == "waiting"


def test_an_old_ledger_gains_the_columns_and_its_rows_are_filled(tmp_path: Path) -> None:
    """A ledger written before the viewer (this version's schema without its columns)
    opens with them, its rows' results, deliveries and searchable texts filled."""
    (tmp_path / "spool").mkdir()
    path = tmp_path / "spool" / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(JOBS_SCHEMA)
        db.execute(
            "INSERT INTO jobs (job_id, state, sop_class_uid, sop_instance_uid,"
            " study_instance_uid, calling_ae, reason, result, received_at, updated_at)"
            " VALUES ('abc123', 'done', '1.2', '1.3', '1.2.9', 'MUSE',"
            " 'sent to PACS@10.1.1.1:104', ?, 1.0, 2.0)",
            (json.dumps(RESULTS["Abnormal"]),),
        )
    spool = Spool(tmp_path / "spool", fsync=False)
    job = spool.get("abc123")
    assert job is not None
    assert (job.origin, job.label, job.probability, job.class_name) == (
        "dicom", "Abnormal", 0.81, "History_MI")
    assert (job.delivery, job.destination, job.patient_name) == (
        "sent", "PACS@10.1.1.1:104", "")
    assert [j.job_id for j in spool.page(JobQuery(text="muse"))[0]] == ["abc123"]
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"jobs_received_text", "jobs_state_received", "jobs_label_received",
            "jobs_updated"} <= indexes


def test_api_pages_follow_the_next_cursor_and_live_updates(tmp_path: Path) -> None:
    settings = Settings(storage={"spool_dir": tmp_path / "spool", "min_free_mb": 0,
                                 "output_dir": tmp_path / "out"})
    spool = Spool(settings.storage.spool_dir, fsync=False)
    from ecg_dicom.pipeline import Pipeline

    pipeline = Pipeline(settings, detector=StandInDetector("MI-ECG"))  # type: ignore[arg-type]
    client = AsgiClient(create_app(settings, spool, RecordingQueue(), pipeline))  # type: ignore[arg-type]
    ids = fill(spool, 60, start=time.time() - 7200)
    first = client.get("/api/jobs?limit=25&label=normal").json()
    assert first["total"] == 20 and len(first["jobs"]) == 20 and first["next"] is None
    seen, url = [], "/api/jobs?limit=25"
    while url:
        page = client.get(url).json()
        assert page["total"] == 60
        seen += [j["job_id"] for j in page["jobs"]]
        url = f"/api/jobs?limit=25&before={page['next']}" if page["next"] else ""
    assert seen == ids[::-1]
    assert seen and client.get("/api/jobs").json()["jobs"][0]["patient_name"] == "DOE, JANE59"
    mark = time.time()
    assert client.get(f"/api/jobs?updated_after={mark}").json()["jobs"] == []
    spool.update(ids[3], state=JobState.FAILED, reason="send: refused (permanent)")
    changed = client.get(f"/api/jobs?updated_after={mark}").json()
    assert [j["job_id"] for j in changed["jobs"]] == [ids[3]]
    assert changed["jobs"][0]["delivery"] == "failed"


@pytest.mark.parametrize("name,expected", [
    ("DOE^JOHN^A^DR^", "DOE, JOHN A"), ("DOE", "DOE"), ("", ""), ("^JOHN", "JOHN"),
    ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"),
])
def test_person_names_read_as_people_write_them(name: str, expected: str) -> None:
    from ecg_dicom.web.jobs_view import person_name

    assert person_name(name) == expected
