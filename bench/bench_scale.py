"""Benchmark: throughput with 1, 2 and 4 worker processes (queue.remote, through Redis)
beside the single-process figure of the same run; acknowledgement latency under a
10,000-job backlog; the cost of one ECG in CPU seconds and worker memory (issue 15).

In one run on this machine:

* the PACS is dcmtk ``storescp``; ECGs are copies of the three real carts' ECGs with
  new UIDs, sent in one ``storescu`` run (TCP_NODELAY=1); the clock stops when the
  last job is ``done`` (its SR and SC stored at the PACS);
* **single process**: ``ecg-dicom serve`` as shipped (SQLite queue, one worker thread);
* **N workers**: ``ecg-dicom serve`` (listener, ledger, delivery; ``queue.workers: 0``)
  and N ``ecg-dicom worker --threads 1`` processes, each with its own spool folder
  (loopback stands in for hosts), through a real ``redis-server``;
* each worker count is warmed first (N ECGs: every worker loads its model), then
  timed; CPU seconds of every process of the run (serve, workers and their
  page-reading children) per ECG give ECG/s per core; memory is the peak resident
  set of one worker with its page-reading child;
* latency: C-STORE round trips (one association, 50 ECGs) into a remote-mode
  ``serve`` with no worker, with an empty ledger and then with a backlog of
  ``--backlog`` acknowledged jobs, with Redis's memory beside it (the window keeps
  at most ``queue.window`` ECGs there);
* the load average before and after, since other work on the machine shares the cores.

    PYTHONPATH=tests .venv/bin/python bench/bench_scale.py [--count 24] [--workers 1,2,4]
        [--backlog 10000]

Results also go to bench/results/bench_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pynetdicom import AE

from ecg_dicom.sop import ACCEPTED_SOP_CLASSES

# The tests' helpers (tests/); run with PYTHONPATH=tests (make bench).
from peers import dcmtk_env, require_tool, run_storescp
from realdata import copies_with_new_uids, real_ecg_paths
from redis_peer import RedisServer
from serve_proc import ServeProcess, ensure_default_model
from worker_proc import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
PACS_AE = "STORESCP"
TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the page-reading children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``'s tree, with its exited children's."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def rss_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class PeakRss:
    """The peak resident memory of each process tree, sampled every 0.1 s."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak = pids, dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_mib(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def storescu(port: int, files: list[Path]) -> None:
    for i in range(0, len(files), 500):  # a command line of bounded length
        done = subprocess.run(
            [require_tool("storescu"), "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
             str(port), *map(str, files[i:i + 500])],
            env=dcmtk_env(), capture_output=True, text=True, check=False, timeout=3600)
        assert done.returncode == 0, done.stderr[-2000:]


def wait_done(service: ServeProcess, count: int, timeout: float = 3600.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        jobs = service.get("/healthz")["jobs"]
        if jobs["done"] >= count:
            return
        if jobs["failed"]:
            raise RuntimeError(f"a job failed: {jobs}\n{service.log()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{jobs}\n{service.log()}")
        time.sleep(0.05)


def destinations(pacs_port: int) -> dict[str, Any]:
    return {"destinations": {"CART": {"ae_title": PACS_AE, "host": "127.0.0.1",
                                      "port": pacs_port}}}


def remote_queue(url: str) -> dict[str, Any]:
    return {"backend": "redis", "redis_url": url, "remote": True}


def run_stream(service: ServeProcess, warm: list[Path], timed: list[Path],
               pids: list[int]) -> dict[str, float]:
    """Warm every worker, then time ``timed``; CPU seconds over the timed stream."""
    storescu(service.dicom_port, warm)
    wait_done(service, len(warm))
    cpu_before = sum(cpu_seconds(p) for p in pids)
    started = time.perf_counter()
    storescu(service.dicom_port, timed)
    wait_done(service, len(warm) + len(timed))
    seconds = time.perf_counter() - started
    cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
    return {"seconds": round(seconds, 2), "ecg_per_s": round(len(timed) / seconds, 3),
            "cpu_s_per_ecg": round(cpu / len(timed), 3)}


def single(work: Path, pacs_port: int, warm: list[Path], timed: list[Path]) -> dict[str, Any]:
    service = ServeProcess(work / "single", {"delivery": destinations(pacs_port)})
    service.workdir.mkdir()
    service.start()
    assert service.proc is not None
    try:
        with PeakRss([service.proc.pid]) as peak:
            figures = run_stream(service, warm, timed, [service.proc.pid])
        figures["rss_mib_peak"] = round(peak.peak[service.proc.pid], 1)
    finally:
        service.stop()
    return figures


def remote(work: Path, pacs_port: int, redis_url: str, workers: int, warm: list[Path],
           timed: list[Path]) -> dict[str, Any]:
    service = ServeProcess(work / f"remote-{workers}", {
        "queue": {**remote_queue(redis_url), "workers": 0},
        "delivery": destinations(pacs_port)})
    service.workdir.mkdir()
    service.start()
    # The cores shared out between the worker processes of this one machine (a worker on
    # a host of its own would keep model.threads: 0, all its cores).
    threads = max(1, (os.cpu_count() or 1) // workers)
    hosts = [WorkerProcess(work / f"remote-{workers}-host{i}", remote_queue(redis_url),
                           config={"model": {"threads": threads}}).start()
             for i in range(workers)]
    try:
        assert service.proc is not None
        pids = [service.proc.pid] + [h.proc.pid for h in hosts if h.proc is not None]
        with PeakRss(pids) as peak:
            figures = run_stream(service, warm, timed, pids)
        figures["worker_rss_mib_peak"] = round(max(peak.peak[p] for p in pids[1:]), 1)
        figures["serve_rss_mib_peak"] = round(peak.peak[pids[0]], 1)
    finally:
        for host in hosts:
            host.stop()
        service.stop()
    return figures


def latencies(port: int, datasets: Sequence[pydicom.Dataset]) -> list[float]:
    ae = AE("BENCH")
    for sop in ACCEPTED_SOP_CLASSES:
        ae.add_requested_context(sop)
    assoc = ae.associate("127.0.0.1", port, ae_title="ECGDICOM")
    assert assoc.is_established
    out = []
    for ds in datasets:
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        started = time.perf_counter()
        status = assoc.send_c_store(ds)
        out.append(time.perf_counter() - started)
        assert status.Status == 0, status
    assoc.release()
    return out


def backlog(work: Path, redis: RedisServer, depth: int, sources: list[Path]) -> dict[str, Any]:
    service = ServeProcess(work / "backlog", {"queue": {**remote_queue(redis.url),
                                                       "workers": 0}})
    service.workdir.mkdir()
    service.start()
    try:
        probe = [pydicom.dcmread(sources[i % len(sources)]) for i in range(50)]
        os.sync()
        empty = latencies(service.dicom_port, probe)
        fill = copies_with_new_uids(sources, work / "fill", depth)
        began = time.perf_counter()
        storescu(service.dicom_port, fill)
        fill_rate = depth / (time.perf_counter() - began)
        shutil.rmtree(work / "fill")
        os.sync()
        deep = latencies(service.dicom_port, probe)
        jobs = service.get("/healthz")["jobs"]
        with redis.client() as client:
            used = int(client.info("memory")["used_memory"])
    finally:
        service.stop()
    ms = lambda xs, q: round(1000 * float(np.percentile(xs, q)), 2)  # noqa: E731
    return {"backlog": jobs["received"], "fill_ack_per_s": round(fill_rate, 1),
            "empty_p50_ms": ms(empty, 50), "empty_p95_ms": ms(empty, 95),
            "deep_p50_ms": ms(deep, 50), "deep_p95_ms": ms(deep, 95),
            "redis_used_mib": round(used / 2**20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=24, help="ECGs timed per figure")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--backlog", type=int, default=10000, help="0: skip")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    ensure_default_model()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    load_before = os.getloadavg()
    results: dict[str, Any] = {"cpu": os.cpu_count(), "count": args.count,
                               "load_before": [round(x, 2) for x in load_before]}
    sources = real_ecg_paths()
    try:
        need = max(counts) + args.count
        with run_storescp(work / "pacs") as (pacs_port, _), \
                RedisServer(work / "redis") as redis:
            files = copies_with_new_uids(sources, work / "single-ecgs", 1 + args.count)
            results["single"] = single(work, pacs_port, files[:1], files[1:])
            for n in counts:
                files = copies_with_new_uids(sources, work / f"ecgs-{n}", need)
                results[f"workers_{n}"] = remote(work, pacs_port, redis.url, n, files[:n],
                                                 files[n:n + args.count])
                shutil.rmtree(work / f"remote-{n}", ignore_errors=True)
                shutil.rmtree(work / "pacs", ignore_errors=True)
                (work / "pacs").mkdir()
            if args.backlog:
                results["latency"] = backlog(work, redis, args.backlog, sources)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_scale.json").write_text(json.dumps(results, indent=2))

    single_fig = results["single"]
    print(f"Throughput, {args.count} real ECGs each, C-STORE in -> SR + SC at the PACS "
          f"({results['cpu']} cores; load average {load_before[0]:.2f} before, "
          f"{results['load_after'][0]:.2f} after)")
    print(f"  single process (serve, SQLite queue, 1 worker thread): "
          f"{single_fig['ecg_per_s']:.2f} ECG/s, {single_fig['cpu_s_per_ecg']:.2f} CPU s/ECG, "
          f"peak RSS {single_fig['rss_mib_peak']:.0f} MiB")
    for n in counts:
        fig = results[f"workers_{n}"]
        print(f"  {n} worker process(es) through Redis: {fig['ecg_per_s']:.2f} ECG/s "
              f"= {fig['ecg_per_s'] / single_fig['ecg_per_s']:.2f}x single, "
              f"{fig['cpu_s_per_ecg']:.2f} CPU s/ECG (all processes), worker peak RSS "
              f"{fig['worker_rss_mib_peak']:.0f} MiB, serve {fig['serve_rss_mib_peak']:.0f} MiB")
    if "latency" in results:
        lat = results["latency"]
        print("C-STORE round trip (50 ECGs, one association), remote serve without workers")
        print(f"  empty ledger        p50 {lat['empty_p50_ms']:7.2f} ms  p95 "
              f"{lat['empty_p95_ms']:7.2f} ms")
        print(f"  {lat['backlog']:,} received jobs  p50 {lat['deep_p50_ms']:7.2f} ms  p95 "
              f"{lat['deep_p95_ms']:7.2f} ms  (backlog acknowledged at "
              f"{lat['fill_ack_per_s']:.0f} ECG/s; Redis holds {lat['redis_used_mib']} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
