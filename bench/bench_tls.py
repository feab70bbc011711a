"""Benchmark and attacks: DICOM TLS on ``ecg-dicom serve`` (issue 12, item 6).

Prints, in one run on this machine, with certificates made by ``openssl``
(tests/pki.py):

1. baseline: pynetdicom's own TLS server (``ssl_context=``) with one silent TCP
   connection open; a real ``echoscu +tls`` waits (the handshake is made in the
   accepting thread, without a time limit);
2. the service's TLS port under handshake attacks: 40 silent connections from 10
   addresses (4 each, the per-host limit) while a real ``echoscu +tls`` is served,
   when they are closed, a ClientHello trickled a byte every 0.4 s;
3. ``echoscu`` latency plain vs TLS, ``storescu`` of N real ECGs plain vs TLS,
   200 callers with a client certificate from a stranger CA (refused, memory);
4. the whole path TLS both ways (``storescu +tls`` -> serve -> ``storescp +tls``)
   for 10 real ECGs (``--no-e2e`` skips it: it runs the model).

Results also go to bench/results/bench_tls.json.

    PYTHONPATH=tests .venv/bin/python bench/bench_tls.py [--count 50] [--no-e2e]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from ecg_dicom.config import ListenerTls
from ecg_dicom.dicom.tls import listener_context
from peers import LOOPBACK, free_port, run_storescp
from pki import Pki, make_pki
from realdata import copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess, run_tool

RESULTS = Path(__file__).resolve().parent / "results" / "bench_tls.json"
HANDSHAKE_S = 2.0


def _listener(pki: Pki, port: int) -> dict[str, Any]:
    return {"enabled": True, "port": port, "certificate": str(pki.server.cert),
            "private_key": str(pki.server.key), "client_ca": str(pki.ca),
            "require_client_certificate": True}


def _timed(*args: str) -> float:
    started = time.monotonic()
    run = run_tool(*args)
    assert run.returncode == 0, run.stdout + run.stderr
    return time.monotonic() - started


def _rss_kib(proc: ServeProcess) -> int:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _refusals(proc: ServeProcess) -> dict[str, Any]:
    metrics = [ln for ln in str(proc.get("/metrics")).splitlines()
               if ln.startswith("ecgdicom_refused_total")]
    lines = sum("TLS handshake refused" in ln for ln in proc.log_path.read_text().splitlines())
    return {"metrics": metrics, "log_lines": lines}


def baseline(pki: Pki, wait: float = 15.0) -> dict[str, Any]:
    """pynetdicom's own TLS server, one silent connection open."""
    context = listener_context(ListenerTls(enabled=True, certificate=pki.server.cert,
                                           private_key=pki.server.key))
    ae = AE()
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server((LOOPBACK, port), block=False, ssl_context=context)
    assert server is not None
    silent = socket.create_connection((LOOPBACK, port))
    started = time.monotonic()
    try:
        run = run_tool("echoscu", "-to", "10", "+tla", "+cf", str(pki.ca), LOOPBACK, str(port),
                       timeout=wait)
        outcome = "served" if run.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        outcome = f"still waiting after {wait:g} s (killed)"
    took = time.monotonic() - started
    silent.close()  # lets the accepting thread go on
    server.shutdown()
    return {"echo_with_one_silent_connection": outcome, "seconds": round(took, 1)}


def attacks(pki: Pki, work: Path) -> dict[str, Any]:
    tls_port = free_port()
    hosts = [f"127.0.0.{i}" for i in range(2, 12)]
    proc = ServeProcess(work / "attacks", {"queue": {"workers": 0}, "dicom": {
        "association_request_timeout": HANDSHAKE_S,
        "allowed_callers": [{"ae_title": "*", "hosts": ["127.0.0.1", *hosts]}],
        "tls": _listener(pki, tls_port)}})
    proc.workdir.mkdir()
    proc.start()
    out: dict[str, Any] = {}
    try:
        silent = []
        for host in hosts:
            for _ in range(4):
                sock = socket.socket()
                sock.bind((host, 0))
                sock.connect((LOOPBACK, tls_port))
                silent.append(sock)
        started = time.monotonic()
        out["echo_during_40_silent_s"] = round(
            _timed("echoscu", *pki.client.dcmtk(pki.ca), LOOPBACK, str(tls_port)), 2)
        closed = []
        for sock in silent:
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
            closed.append(time.monotonic() - started)
            sock.close()
        out["silent_all_closed_after_s"] = round(max(closed), 2)
        hello = bytes.fromhex("16030100c8010000c40303") + bytes(32)
        with socket.create_connection((LOOPBACK, tls_port)) as sock:
            started = time.monotonic()
            sent = 0
            for byte in hello:
                try:
                    sock.sendall(bytes([byte]))
                    sent += 1
                    sock.settimeout(0.4)
                    if sock.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            out["trickle_cut_after_s"] = round(time.monotonic() - started, 2)
            out["trickle_bytes_sent"] = sent
        out |= _refusals(proc)
    finally:
        out["serve_exit"] = proc.stop()
    return out


def throughput(pki: Pki, work: Path, count: int, stranger_count: int = 200) -> dict[str, Any]:
    tls_port = free_port()
    proc = ServeProcess(work / "rates", {"queue": {"workers": 0},
                                         "dicom": {"tls": _listener(pki, tls_port)}})
    proc.workdir.mkdir()
    proc.start()
    tls = pki.client.dcmtk(pki.ca)
    out: dict[str, Any] = {}
    try:
        plain = [_timed("echoscu", LOOPBACK, str(proc.dicom_port)) for _ in range(20)]
        secure = [_timed("echoscu", *tls, LOOPBACK, str(tls_port)) for _ in range(20)]
        out["echo_median_s"] = {"plain": round(statistics.median(plain), 3),
                                "tls": round(statistics.median(secure), 3)}
        files = copies_with_new_uids(real_ecg_paths(), work / "copies", 2 * count)
        out["store"] = {
            "objects_each": count,
            "mb_each": round(sum(p.stat().st_size for p in files[:count]) / 1e6, 1),
            "plain_s": round(_timed("storescu", LOOPBACK, str(proc.dicom_port),
                                    *map(str, files[:count])), 2),
            "tls_s": round(_timed("storescu", *tls, LOOPBACK, str(tls_port),
                                  *map(str, files[count:])), 2),
        }
        jobs = proc.jobs()
        out["store"] |= {"recorded": len(jobs),
                         "distinct": len({j["sop_instance_uid"] for j in jobs})}
        rss = _rss_kib(proc)
        started = time.monotonic()
        refused = sum(
            run_tool("echoscu", "-to", "5", *pki.stranger.dcmtk(pki.ca), LOOPBACK,
                     str(tls_port)).returncode != 0
            for _ in range(stranger_count))
        out["stranger_certificates"] = {
            "attempts": stranger_count, "refused": refused,
            "seconds": round(time.monotonic() - started, 1),
            "rss_kib_before_after": [rss, _rss_kib(proc)],
            "legit_echo_after": run_tool("echoscu", *tls, LOOPBACK, str(tls_port)).returncode == 0,
        } | _refusals(proc)
    finally:
        out["serve_exit"] = proc.stop()
    return out


def whole_path(pki: Pki, work: Path, count: int = 10) -> dict[str, Any]:
    with run_storescp(work / "pacs", *pki.server.dcmtk(pki.ca)) as (pacs_port, _proc):
        tls_port = free_port()
        proc = ServeProcess(work / "e2e", {
            "dicom": {"tls": _listener(pki, tls_port)},
            "delivery": {"fixed_destinations": [{"ae_title": "STORESCP", "host": "localhost",
                                                 "port": pacs_port, "tls": True}],
                         "tls": {"ca_certificates": str(pki.ca),
                                 "certificate": str(pki.client.cert),
                                 "private_key": str(pki.client.key)}}})
        proc.workdir.mkdir()
        proc.start()
        try:
            files = copies_with_new_uids(real_ecg_paths(), work / "e2e-copies", count)
            started = time.monotonic()
            _timed("storescu", *pki.client.dcmtk(pki.ca), LOOPBACK, str(tls_port),
                   *map(str, files))
            jobs = proc.wait_jobs(count, timeout=1800)
            took = time.monotonic() - started
        finally:
            exit_code = proc.stop()
    received = [pydicom.dcmread(p, stop_before_pixels=True)
                for p in (work / "pacs").iterdir()]
    return {"ecgs": count, "done": sum(j["state"] == "done" for j in jobs),
            "objects_at_pacs": len(received),
            "distinct_at_pacs": len({r.SOPInstanceUID for r in received}),
            "seconds": round(took, 1), "serve_exit": exit_code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50, help="ECGs stored each way")
    parser.add_argument("--no-e2e", action="store_true", help="skip the path with the model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        work = Path(tmp)
        pki = make_pki(work / "pki")
        results: dict[str, Any] = {"baseline_pynetdicom": baseline(pki),
                                   "attacks": attacks(pki, work),
                                   "rates": throughput(pki, work, args.count)}
        if not args.no_e2e:
            results["whole_path_tls_both_ways"] = whole_path(pki, work)
    text = json.dumps(results, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
