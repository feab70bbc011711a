"""Benchmark: the viewer's list (``GET /api/jobs``) with 100,000 jobs in the ledger.

Fills a fresh spool's ledger with N synthetic jobs (default 100,000: received over 100
days, 20,000 patients, 60 % Normal / 30 % Abnormal / 5 % not interpretable / 5 %
without result, a few failed and waiting; each row as the listener and the worker
write it, with a result dict of the worker's size), serves the real app with uvicorn
on loopback (``web.HttpServer``, as ``serve`` does) and times, over HTTP, the median of
``--repeat`` requests of:

* ``first``: the first page (50 newest);
* ``filtered``: state done + label abnormal; a received date range; a text (``q``)
  that matches one patient (a scan of every row: the slowest filter);
* ``deep``: the page after job 90,000 (keyset cursor), and a live-update poll.

Beside them, measured in the same run on the same data (the references):

* ``old /jobs``: the JSON list that existed before (``GET /jobs?limit=50``);
* ``no index``: each page's SQL on a copy of the ledger without the viewer's
  indexes (what the same query costs without them);
* ``offset``: the deep page as OFFSET paging would read it (SQL).

Target: every list request under 300 ms.

Run:  PYTHONPATH=tests .venv/bin/python bench/bench_viewer.py [--jobs 100000] [--repeat 15]
Prints a table and writes bench/results/viewer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecg_dicom.config import Settings
from ecg_dicom.jobs import JobQuery, JobState, Spool
from ecg_dicom.jobs.listing import VIEWER_INDEXES, result_columns, search_text
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.web import HttpServer, create_app
from ecg_dicom.web.jobs_view import cursor, day_start
from peers import free_port

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
DAY = 86400.0
ECG_CLASS = "1.2.840.10008.5.1.4.1.1.9.1.1"


def synthetic_result(rng: random.Random, label: str) -> dict[str, Any]:
    """A result dict shaped like the worker's record (three boxes, outputs)."""
    cls = {"Normal": "Normal-ECG", "Abnormal": rng.choice(["ECG HB", "History_MI", "MI-ECG"]),
           "Not interpretable": None}[label]
    score = rng.random()
    return {
        "label": label, "reason": "" if cls else "the signal is flat in 9 of 12 leads",
        "probability": None if cls is None else round(score, 4), "class_name": cls,
        "confidence": round(score, 4), "abnormal_score": round(score, 4),
        "detections": [{"class_name": cls or "Normal-ECG", "confidence": round(rng.random(), 4),
                        "box": [12.5, 80.0, 1580.2, 1100.7]} for _ in range(3)],
        "model_name": "ecg-yolov8m", "model_version": "b8bed940e248f3b2" * 4,
        "runtime": "openvino-int8 int8",
        "outputs": {"sc": "2.25.1234567890123456789", "sr": "2.25.9876543210987654321",
                    "series_numbers": [9001, 9002], "replaces": None},
    }


def fill(spool: Spool, count: int, seed: int = 7) -> None:
    """``count`` jobs as the listener and worker write them, in one transaction."""
    rng = random.Random(seed)
    now = time.time()
    rows = []
    for i in range(count):
        job_id = spool.new_job_id()
        patient = rng.randrange(20_000)
        name, pid = f"DOE^JANE{patient}", f"P{patient:06d}"
        ae = rng.choice(["MUSE", "CARDIO1", "CARDIO2", "ER_CART"])
        study = f"1.2.826.0.1.3680043.8.498.{i}"
        label = rng.choices(["Normal", "Abnormal", "Not interpretable", ""],
                            [60, 30, 5, 5])[0]
        state, reason, delivery = JobState.DONE, "sent to PACS@10.1.1.1:104", "sent"
        if not label:
            state, reason, delivery = rng.choice([
                (JobState.FAILED, "render: the waveform has no channels", ""),
                (JobState.RECEIVED, "", ""),
            ])
        elif rng.random() < 0.01:
            state, delivery = JobState.WAITING, "waiting"
            reason = "waiting for destination: send attempt 1 failed (PACS@10.1.1.1:104)"
        result = synthetic_result(rng, label) if label else {}
        received = now - (count - i) * (100 * DAY / count)
        row = {
            "job_id": job_id, "state": state, "sop_class_uid": ECG_CLASS,
            "sop_instance_uid": f"{study}.1", "study_instance_uid": study, "calling_ae": ae,
            "peer_address": "10.0.0.5", "size": 143_650, "reason": reason,
            "received_at": received, "updated_at": received + 4.0, "origin": "dicom",
            "patient_name": name, "patient_id": pid, "study_date": "20261201",
            "study_description": "12 LEAD ECG", "filename": "",
            "result": json.dumps(result) if result else "",
            "label": "", "probability": None, "class_name": "",
            "delivery": delivery, "destination": "PACS@10.1.1.1:104" if label else "",
            "search": search_text(name, pid, ae, job_id, study),
        }
        if result:
            row.update(result_columns(result))
        rows.append(row)
    with sqlite3.connect(spool.ledger_path) as db:
        db.executemany(
            f"INSERT INTO jobs ({', '.join(rows[0])}) VALUES "
            f"({', '.join(':' + k for k in rows[0])})", rows)
        db.execute("ANALYZE")


def median_ms(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median, max) milliseconds of ``repeat`` calls after one warm-up call."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def sql_page(path: Path, query: JobQuery, offset: int | None = None) -> Callable[[], Any]:
    """The SQL of one page as JobLedger.page runs it (rows and total), on ``path``
    (``offset``: the page read by OFFSET instead of a keyset cursor)."""
    paged, args = query.where(paged=offset is None)
    counted, count_args = query.where(paged=False)
    db = sqlite3.connect(path, check_same_thread=False)
    tail = f" OFFSET {offset}" if offset is not None else ""
    source = "" if path.name.startswith("no-index") else query.source()

    def run() -> Any:
        rows = db.execute(f"SELECT * FROM jobs WHERE job_id IN (SELECT job_id FROM jobs{source}"
                          f"{paged} ORDER BY received_at DESC, job_id DESC LIMIT :limit_{tail})"
                          " ORDER BY received_at DESC, job_id DESC",
                          {**args, "limit_": query.limit + 1}).fetchall()
        return rows, db.execute(f"SELECT COUNT(*) FROM jobs{source}{counted}",
                                count_args).fetchone()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "viewer.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    settings = Settings(storage={"spool_dir": root / "spool", "output_dir": root / "out",
                                 "min_free_mb": 0})
    spool = Spool(settings.storage.spool_dir, fsync=False)
    started = time.perf_counter()
    fill(spool, args.jobs)
    fill_s = time.perf_counter() - started
    bare = root / "no-index.sqlite3"
    shutil.copyfile(spool.ledger_path, bare)
    with sqlite3.connect(bare) as db:
        for line in VIEWER_INDEXES.strip().splitlines():
            db.execute(f"DROP INDEX {line.split()[5]}")
    depth = args.jobs * 9 // 10  # the page after job 90,000 of 100,000
    with sqlite3.connect(spool.ledger_path) as db:
        deep_at = db.execute("SELECT received_at, job_id FROM jobs ORDER BY received_at DESC,"
                             " job_id DESC LIMIT 1 OFFSET ?", (depth - 1,)).fetchone()
        patient = db.execute("SELECT patient_id FROM jobs LIMIT 1 OFFSET 4242").fetchone()[0]
    deep = (float(deep_at[0]), str(deep_at[1]))
    recent = time.time() - 120.0
    days = ("2026-10-01", "2026-10-07")
    cases: list[tuple[str, str, JobQuery]] = [
        ("first page", "/api/jobs?limit=50", JobQuery()),
        ("done + abnormal", "/api/jobs?state=done&label=abnormal",
         JobQuery(state="done", label="Abnormal")),
        ("a week (dates)", f"/api/jobs?date_from={days[0]}&date_to={days[1]}",
         JobQuery(received_from=day_start(days[0]), received_to=day_start(days[1], after=True))),
        ("text q (1 patient)", f"/api/jobs?q={patient}", JobQuery(text=patient)),
        (f"deep page ({depth:,})", f"/api/jobs?before={cursor(deep)}", JobQuery(before=deep)),
        ("live poll", f"/api/jobs?updated_after={recent}", JobQuery(updated_after=recent)),
    ]
    port = free_port()
    pipeline = Pipeline(settings)
    server = HttpServer(create_app(settings, spool, None, pipeline),  # type: ignore[arg-type]
                        "127.0.0.1", port)
    server.start()

    def http(path: str) -> Callable[[], Any]:
        def get() -> Any:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as rsp:
                return json.loads(rsp.read())
        return get

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http("/healthz")()
            break
        except OSError:
            time.sleep(0.1)
    rows = []
    print(f"{args.jobs:,} jobs in the ledger (filled in {fill_s:.1f} s)")
    print(f"{'request':<20} {'http ms':>8} {'(max)':>7} {'sql ms':>7} {'no-index':>9} "
          f"{'rows':>5} {'total':>7}")
    try:
        for name, path, query in cases:
            body = http(path)()
            ms, worst = median_ms(http(path), args.repeat)
            sql, _ = median_ms(sql_page(spool.ledger_path, query), args.repeat)
            bare_ms, _ = median_ms(sql_page(bare, query), max(3, args.repeat // 3))
            rows.append({"request": name, "path": path, "http_ms": round(ms, 1),
                         "http_max_ms": round(worst, 1), "sql_ms": round(sql, 2),
                         "no_index_sql_ms": round(bare_ms, 2), "rows": len(body["jobs"]),
                         "total": body["total"]})
            print(f"{name:<20} {ms:8.1f} {worst:7.1f} {sql:7.2f} {bare_ms:9.2f} "
                  f"{len(body['jobs']):5d} {body['total']:7d}")
        old_ms, old_worst = median_ms(http("/jobs?limit=50"), args.repeat)
        offset_ms, _ = median_ms(sql_page(spool.ledger_path, JobQuery(), offset=depth),
                                 args.repeat)
    finally:
        server.stop()
        pipeline.close()
    print(f"{'old /jobs?limit=50':<20} {old_ms:8.1f} {old_worst:7.1f}   (reference: the JSON list"
          " before the viewer)")
    print(f"{'OFFSET (sql)':<20} {'':8} {'':7} {offset_ms:7.2f}   (reference: the deep page "
          "by OFFSET paging)")
    slowest = max(r["http_ms"] for r in rows)
    print(f"slowest list request {slowest:.1f} ms; target < {TARGET_MS:.0f} ms: "
          f"{'met' if slowest < TARGET_MS else 'NOT met'}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    summary = {"jobs": args.jobs, "slowest_http_ms": slowest, "target_ms": TARGET_MS,
               "old_jobs_endpoint_ms": round(old_ms, 1), "offset_deep_sql_ms": round(offset_ms, 2),
               "fill_s": round(fill_s, 1)}
    machine = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
               "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "requests": rows, "machine": machine,
                                    "repeat": args.repeat}, indent=2) + "\n")
    print(f"wrote {args.out}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
