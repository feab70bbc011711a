"""Workers on other hosts, sharing nothing but Redis (issue 15): a real ``ecg-dicom
serve`` (listener, ledger, delivery; no worker of its own), two ``ecg-dicom worker``
processes each with its own spool folder (loopback and separate folders stand in for
hosts), a real ``redis-server`` and a dcmtk ``storescp`` PACS that keeps every object
it receives under a unique name (a duplicate would be a second file).

A stream of real ECGs sent with ``storescu``; mid-stream a worker is SIGKILLed while
it holds a job, and Redis is killed and started again empty.  Every acknowledged ECG
gets exactly one SR and one SC at the PACS; the killed worker's job is read again by
another worker once its lease expired.  The real model reads every ECG.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from peers import run_storescp
from realdata import copies_with_new_uids
from redis_peer import RedisServer
from serve_proc import ServeProcess, run_tool
from worker_proc import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PACS_AE = "STORESCP"
LEASE = 4.0


def remote_queue(url: str) -> dict[str, Any]:
    return {"backend": "redis", "redis_url": url, "remote": True, "lease_seconds": LEASE,
            "window": 4, "redis_reconnect_max": 1.0, "requeue_interval": 1.0}


def send(service: ServeProcess, files: list[Path]) -> None:
    sent = run_tool("storescu", "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
                    str(service.dicom_port), *map(str, files))
    assert sent.returncode == 0, sent.stdout + sent.stderr


def wait_until(what: str, check: Callable[[], bool], alive: list[Any],
               timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for proc in alive:
            assert proc.proc is not None and proc.proc.poll() is None, proc.log()
        time.sleep(0.1)
    raise TimeoutError(f"{what}\n" + "\n".join(p.log() for p in alive))


def serve_events(service: ServeProcess) -> list[dict[str, Any]]:
    lines = service.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_two_worker_hosts_through_redis_a_worker_killed_and_redis_restarted_lose_nothing(
    tmp_path: Path, real_ecgs: list[Path], default_model: Path
) -> None:
    files = copies_with_new_uids(real_ecgs, tmp_path / "send", 7)
    pacs_dir = tmp_path / "pacs"
    redis_server = RedisServer(tmp_path / "redis").start()
    workers: list[WorkerProcess] = []
    with run_storescp(pacs_dir, "--unique-filenames", aetitle=PACS_AE) as (pacs_port, _):
        service = ServeProcess(tmp_path / "listener", {
            "queue": {**remote_queue(redis_server.url), "workers": 0},
            "delivery": {"destinations": {"CART": {"ae_title": PACS_AE, "host": "127.0.0.1",
                                                   "port": pacs_port}},
                         "backoff_initial": 0.25, "backoff_max": 1.0, "timeout": 5.0},
        })
        service.workdir.mkdir()
        try:
            service.start()
            a = WorkerProcess(tmp_path / "host-a", remote_queue(redis_server.url)).start()
            b = WorkerProcess(tmp_path / "host-b", remote_queue(redis_server.url)).start()
            workers += [a, b]
            began = time.monotonic()
            send(service, files[:3])
            # Worker A holds a job (its lease is in Redis): SIGKILL it mid-job.
            held: list[str] = []

            def a_holds_a_job() -> bool:
                """A holds a lease for a job it has not finished reading (its "read" line,
                written before the answer is sent, is not in its log yet)."""
                with redis_server.client() as client:
                    held[:] = [k.decode().rsplit(":", 1)[1] for k in
                               client.scan_iter("ecg-dicom:lease:*")
                               if client.get(k) == a.holder.encode()]
                done = a.log_path.read_text()
                held[:] = [j for j in held if j not in done]
                return bool(held)

            wait_until("worker A never took a job", a_holds_a_job, [service, a, b])
            a.kill()
            killed_job = held[0]
            send(service, files[3:5])
            # Redis killed with every message, byte and lease it held; two ECGs are
            # acknowledged while it is away (the ledger only), then it is back, empty.
            redis_server.kill()
            send(service, files[5:])
            acked_in_outage = 2
            time.sleep(2.0)
            redis_server.start()
            workers.append(WorkerProcess(tmp_path / "host-a2",
                                         remote_queue(redis_server.url)).start())

            def all_done() -> bool:
                jobs = service.jobs()
                return len(jobs) == len(files) and all(j["state"] == "done" for j in jobs)

            wait_until("not every job done", all_done, [service, *workers[1:]], timeout=600)
            took = time.monotonic() - began
            jobs = service.jobs()
        finally:
            for worker in workers:
                worker.stop()
            assert service.stop() == 0
            redis_server.kill()
    # One SC and one SR per job at the PACS: those the job recorded, no duplicate.
    received = [pydicom.dcmread(p, stop_before_pixels=True) for p in pacs_dir.rglob("*")
                if p.is_file()]
    assert len(received) == 2 * len(files), (len(received), len(files))
    outputs = [j["result"]["outputs"] for j in jobs]
    assert sorted(str(d.SOPInstanceUID) for d in received if d.Modality == "SR") == sorted(
        o["sr"] for o in outputs)
    assert sorted(str(d.SOPInstanceUID) for d in received if d.Modality != "SR") == sorted(
        o["sc"] for o in outputs)
    assert all(j["reason"] == f"sent to {PACS_AE}@127.0.0.1:{pacs_port}" for j in jobs)
    # Every result was read on a worker host (serve has no model), the killed job by
    # another worker than the one killed.
    events = serve_events(service)
    read_by = {e["job_id"]: e["message"] for e in events
               if e.get("message", "").startswith("read by ")}
    assert set(read_by) == {j["job_id"] for j in jobs}
    assert a.holder not in read_by[killed_job], read_by[killed_job]
    hosts = {m.split()[2] for m in read_by.values()}  # how the work spread (timing-dependent)
    assert hosts <= {w.holder for w in workers}, hosts
    # The workers used their own folders only; nothing went wrong anywhere.
    for worker in workers:
        assert (worker.spool_dir / "reading").is_dir()
        assert not list((worker.spool_dir / "instances").iterdir())
    listener_log = service.log_path.read_text()
    assert "Traceback" not in listener_log
    assert listener_log.count("is unreachable") == 1
    stale = 0
    for worker in workers[1:]:
        log = worker.log_path.read_text()
        assert "Traceback" not in log, worker.log()
        stale += log.count("no longer in Redis")  # a message without bytes: harmless
    print(f"remote workers: {len(files)} ECGs read by {len(hosts)} of 3 worker processes "
          "(2, then one started after the kill), "
          f"a worker SIGKILLed mid-job (its job read again after the {LEASE:.0f} s lease), "
          f"Redis killed and restarted empty ({acked_in_outage} ECGs acknowledged while it "
          f"was away): {len(received)} objects at the PACS, 0 lost, 0 duplicates, "
          f"{took:.0f} s; {stale} stale message(s) dropped by workers")
