"""Outages never lose a result (issue 12, item 3), with real peers around a real
``ecg-dicom serve``: a PACS (dcmtk ``storescp``) that is down for a long time, and a
Redis queue (``redis-server``) killed, restarted and flushed during a stream.

Time is compressed by settings, not faked: the backoff is a quarter of a second
doubling to one second (instead of 5 s to 10 min), so a few dozen seconds of outage
are dozens of attempts - far more than v0.1's eight, after which every job failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from peers import free_port, run_storescp
from realdata import copies_with_new_uids
from redis_peer import RedisServer
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

PACS_AE = "STORESCP"
#: ECGs sent in the PACS outage test (the model runs for each: a few seconds apiece).
COUNT = 4
#: The states of a job whose destination is down: waiting, or being tried right now.
TRYING = {"waiting", "delivering"}
#: How long the test keeps Redis away once serve has noticed (queue.redis_reconnect_max
#: is 2 s there: several reconnection attempts).
OUTAGE_SECONDS = 8.0


def settings(pacs_port: int, **delivery: Any) -> dict[str, dict[str, Any]]:
    return {
        "delivery": {
            "destinations": {"CART": {"ae_title": PACS_AE, "host": "127.0.0.1",
                                      "port": pacs_port}},
            "backoff_initial": 0.25, "backoff_max": 1.0, "timeout": 5.0, **delivery,
        },
        "queue": {"requeue_interval": 1.0},
    }


def send(service: ServeProcess, files: list[Path]) -> None:
    sent = run_tool("storescu", "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
                    str(service.dicom_port), *map(str, files))
    assert sent.returncode == 0, sent.stdout + sent.stderr


def wait_for(service: ServeProcess, check: Callable[[list[dict[str, Any]]], bool],
             timeout: float = 300.0) -> list[dict[str, Any]]:
    """Poll the job list until ``check`` holds (the service must stay up meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = service.jobs()
        if check(jobs):
            return jobs
        assert service.proc is not None and service.proc.poll() is None, service.log()
        time.sleep(0.2)
    raise TimeoutError(f"{[(j['state'], j['reason']) for j in service.jobs()]}\n{service.log()}")


def cli(service: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecg_dicom", *args],
        env={"ECG_DICOM_CONFIG": str(service.workdir / "site.yaml"), "PATH": "/usr/bin"},
        cwd=service.workdir, capture_output=True, text=True, timeout=60, check=False,
    )


def assert_each_result_once(pacs_dir: Path, jobs: list[dict[str, Any]]) -> None:
    """The PACS holds exactly one SC and one SR per job: those the job recorded."""
    received = [pydicom.dcmread(p, stop_before_pixels=True) for p in pacs_dir.rglob("*")
                if p.is_file()]
    outputs = [j["result"]["outputs"] for j in jobs]
    assert len(received) == 2 * len(jobs), (len(received), len(jobs))
    assert sorted(str(d.SOPInstanceUID) for d in received if d.Modality != "SR") == sorted(
        o["sc"] for o in outputs)
    assert sorted(str(d.SOPInstanceUID) for d in received if d.Modality == "SR") == sorted(
        o["sr"] for o in outputs)


def test_a_long_pacs_outage_waits_survives_a_restart_and_delivers_each_result_once(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    files = copies_with_new_uids(real_ecgs, tmp_path / "send", COUNT)
    pacs_port = free_port()  # the PACS is down: nothing listens there
    config = settings(pacs_port, retry_window_hours=1.0)
    first = ServeProcess(tmp_path / "svc", config)
    first.workdir.mkdir()
    first.start()
    outage_began = time.monotonic()
    try:
        send(first, files)
        jobs = wait_for(first, lambda js: len(js) == COUNT and all(j["state"] == "waiting"
                                                                   for j in js))
        where = f"{PACS_AE}@127.0.0.1:{pacs_port}"
        for job in jobs:  # visible, with the reason, in the API...
            assert job["reason"].startswith("waiting for destination: "), job
            assert where in job["reason"] and "next try" in job["reason"]
        # ...in /healthz and the metrics (a job being tried is "delivering" for a moment)...
        deadline = time.monotonic() + 30
        while (first.get("/healthz")["jobs"]["waiting"] != COUNT
               or f"ecgdicom_jobs_waiting {COUNT}.0" not in first.get("/metrics")):
            assert time.monotonic() < deadline, "/healthz or ecgdicom_jobs_waiting never said 4"
            time.sleep(0.2)
        listed = cli(first, "jobs", "list", "--state", "waiting")  # ...and in `ecg-dicom jobs`
        lines = listed.stdout.splitlines()
        assert listed.returncode == 0 and 1 <= len(lines) <= COUNT, listed.stdout
        assert all(line.split()[1] == "waiting" and where in line for line in lines)
        # Far longer than v0.1's 8 attempts (about 8 s with this backoff): still waiting.
        # (One job probes the PACS; the others wait for it rather than try too.)
        jobs = wait_for(first, lambda js: max(j["delivery_attempts"] for j in js) >= 12)
        assert {j["state"] for j in jobs} <= TRYING
    finally:
        assert first.stop() == 0
    # Stopped: the ledger holds every job waiting, with its schedule...
    listed = cli(first, "jobs", "list", "--json")
    stopped = json.loads(listed.stdout)
    assert {j["state"] for j in stopped} == {"waiting"}, listed.stdout
    since = {j["job_id"]: j["waiting_since"] for j in stopped}
    probes = max(j["delivery_attempts"] for j in stopped)
    assert all(j["next_attempt_at"] > j["waiting_since"] > 0 for j in stopped)
    # ...and a restart takes it up: same window (waiting_since), attempts go on.
    second = ServeProcess(first.workdir, config, first.dicom_port, first.http_port).start()
    try:
        jobs = second.jobs()
        assert {j["state"] for j in jobs} <= TRYING
        assert {j["job_id"]: j["waiting_since"] for j in jobs} == since
        wait_for(second, lambda js: max(j["delivery_attempts"] for j in js) >= probes + 2)
        pacs_dir = tmp_path / "pacs"
        with run_storescp(pacs_dir, aetitle=PACS_AE, port=pacs_port):
            outage = time.monotonic() - outage_began
            back = time.monotonic()
            jobs = wait_for(second, lambda js: all(j["state"] == "done" for j in js))
            delivered_in = time.monotonic() - back
        assert all(j["reason"] == f"sent to {PACS_AE}@127.0.0.1:{pacs_port}" for j in jobs)
        assert second.log_path.read_text().count("delivered after waiting") == COUNT
    finally:
        assert second.stop() == 0
    assert_each_result_once(pacs_dir, jobs)
    print(f"PACS outage: {len(jobs)} ECGs, outage {outage:.0f} s with a restart, "
          f"attempts {min(j['delivery_attempts'] for j in jobs)}-"
          f"{max(j['delivery_attempts'] for j in jobs)}, all delivered {delivered_in:.1f} s "
          f"after the PACS came back, {2 * len(jobs)} objects at the PACS, 0 duplicates")


def test_a_destination_unreachable_past_the_window_fails_with_the_reason_then_retry_delivers(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    pacs_port = free_port()
    config = settings(pacs_port, retry_window_hours=0.002)  # 7.2 s
    service = ServeProcess(tmp_path / "svc", config)
    service.workdir.mkdir()
    service.start()
    try:
        send(service, copies_with_new_uids(real_ecgs[:1], tmp_path / "send", 1))
        (waiting,) = wait_for(service, lambda js: len(js) == 1 and js[0]["state"] == "waiting")
        (job,) = wait_for(service, lambda js: js[0]["state"] == "failed")
        waited = job["updated_at"] - waiting["waiting_since"]
        assert 7.2 <= waited < 60, waited
        assert job["delivery_attempts"] > 3
        failed_after = job["delivery_attempts"]
        reason = job["reason"]
        assert reason.startswith(f"send: could not associate with {PACS_AE}@127.0.0.1:{pacs_port}")
        assert "(transient; the destination could not be reached for" in reason
        assert "retry_window_hours=0.002)" in reason
        pacs_dir = tmp_path / "pacs"
        with run_storescp(pacs_dir, aetitle=PACS_AE, port=pacs_port):
            retry = cli(service, "jobs", "retry")
            assert retry.returncode == 0 and "queued again: 1" in retry.stdout, retry.stderr
            (job,) = wait_for(service, lambda js: js[0]["state"] == "done")
    finally:
        assert service.stop() == 0
    assert_each_result_once(pacs_dir, [job])
    print(f"window exceeded: failed after {waited:.1f} s of a 7.2 s window, "
          f"{failed_after} attempts, with the reason; jobs retry delivered 2 objects, 0 duplicates")


def hold_outage(service: ServeProcess, outages: int) -> None:
    """Keep Redis away for OUTAGE_SECONDS once serve has noticed: several reconnection
    rounds (capped at 2 s), and still one line for this outage, none saying it is back."""
    wait_for(service, lambda js: service.log_path.read_text().count("is unreachable") == outages)
    noticed = time.monotonic()
    while time.monotonic() - noticed < OUTAGE_SECONDS:
        log = service.log_path.read_text()
        assert log.count("is unreachable") == outages
        assert log.count("is reachable again") == outages - 1
        assert service.proc is not None and service.proc.poll() is None
        time.sleep(0.2)


def back_again(service: ServeProcess, outages: int) -> None:
    """Wait until serve has found Redis again (within redis_reconnect_max)."""
    wait_for(service, lambda js: service.log_path.read_text().count("is reachable again")
             == outages, timeout=30)


def test_redis_down_at_start_killed_restarted_and_flushed_during_a_stream_loses_nothing(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    files = copies_with_new_uids(real_ecgs, tmp_path / "send", 15)
    batches = [files[i:i + 3] for i in range(0, 15, 3)]
    pacs_dir = tmp_path / "pacs"
    redis_server = RedisServer(tmp_path / "redis")  # not started: Redis is down at start
    with run_storescp(pacs_dir, aetitle=PACS_AE) as (pacs_port, _):
        config = settings(pacs_port)
        config["queue"].update(backend="redis", redis_url=redis_server.url,
                               redis_reconnect_max=2.0)
        service = ServeProcess(tmp_path / "svc", config)
        service.workdir.mkdir()
        service.start()  # ready without its queue
        assert service.proc is not None
        pid = service.proc.pid
        began = time.monotonic()
        try:
            send(service, batches[0])  # acknowledged: in the ledger only
            hold_outage(service, 1)
            redis_server.start()
            back_again(service, 1)
            send(service, batches[1])
            redis_server.kill()  # during the stream, with every message it held
            send(service, batches[2])  # acknowledged during the outage
            hold_outage(service, 2)
            during = sum(j["state"] == "received" for j in service.jobs())
            redis_server.start()  # back, empty, on the same port
            back_again(service, 2)
            send(service, batches[3])
            wait_for(service, lambda js: sum(j["state"] == "done" for j in js) >= 3)
            send(service, batches[4])
            queued = sum(j["state"] == "received" for j in service.jobs())
            redis_server.flushall()  # every queued message gone
            jobs = wait_for(service, lambda js: len(js) == len(files) and all(
                j["state"] == "done" for j in js), timeout=600)
            took = time.monotonic() - began
            # The same process did it all: no restart.
            assert service.proc.poll() is None and service.proc.pid == pid
        finally:
            try:
                assert service.stop() == 0
            finally:
                redis_server.kill()
    log = service.log_path.read_text()
    assert log.count("is unreachable") == 2, "one line per outage"
    assert log.count("is reachable again") == 2
    assert "Traceback" not in log and "Error reading from queue" not in log
    requeued = log.count("jobs again from the ledger")
    assert requeued >= 2
    assert_each_result_once(pacs_dir, jobs)
    print(f"Redis outages: {len(jobs)} ECGs acknowledged, Redis down at start, then killed "
          f"({during} received while it was down), restarted empty and flushed ({queued} "
          f"queued); {requeued} ledger re-queues, 0 lost, 0 duplicates, {took:.0f} s, "
          "one serve process, 2 outage lines, 0 tracebacks")
