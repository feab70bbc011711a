"""Benchmark: C-STORE acknowledgements into ``ecg-dicom serve`` beside a bare SCP.

Prints, in one run on this machine:

1. acknowledgements per second for N real ECGs (copies of a real GE MAC55 ECG
   with new UIDs) sent by dcmtk ``storescu`` (TCP_NODELAY=1) into
   (a) a bare pynetdicom SCP that only writes and fsyncs the bytes, and
   (b) ``ecg-dicom serve`` with fsync on (workers off, so only receiving is
   measured; then workers on, the model running beside the listener);
2. C-STORE round-trip latency (p50/p95) with an empty queue and with a
   1,000-deep queue;
3. the service's resident memory over the stream, and its growth while it
   receives one large multi-frame Secondary Capture (>= 300 MB, made here).

Target (issue 2): serve >= 70 % of the bare SCP's rate; latency independent of
queue depth; memory growth <= 100 MB for the large object and not growing with
the number of objects.  Results also go to bench/results/bench_scp.json.

    PYTHONPATH=tests .venv/bin/python bench/bench_scp.py [--count 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from ecg_dicom.sop import MULTIFRAME_TRUE_COLOR_SC

# serve_proc, peers, realdata: the tests' helpers (tests/); run with PYTHONPATH=tests (make bench).
from peers import dcmtk_env, free_port
from realdata import copies_with_new_uids
from serve_proc import ServeProcess

ROOT = Path(__file__).resolve().parents[1]

SOURCE = ROOT.parent / "shared" / "data" / "dicom-ecg" / "ge-mac55" / "ecg.dcm"
BARE_SCP = r'''
import os, sys
from pynetdicom import AE, evt, _config
from ecg_dicom.sop import ACCEPTED_SOP_CLASSES, transfer_syntaxes_for
out, port = sys.argv[1], int(sys.argv[2])
n = 0
def on_store(event):
    global n
    n += 1
    path = os.path.join(out, f"{n}.dcm")
    with open(path, "wb") as fh:
        fh.write(event.encoded_dataset())
        fh.flush()
        os.fsync(fh.fileno())
    return 0
ae = AE("BARE")
ae.maximum_associations = 10
for sop in ACCEPTED_SOP_CLASSES:
    ae.add_supported_context(sop, list(transfer_syntaxes_for(sop)))
ae.start_server(("127.0.0.1", port), evt_handlers=[(evt.EVT_C_STORE, on_store)])
'''


def make_large_sc(path: Path, megabytes: int = 320) -> int:
    """A multi-frame true colour SC of the given size (frames of an ECG-page size)."""
    rows, cols = 1137, 1600
    frame = rows * cols * 3
    frames = -(-megabytes * 1024 * 1024 // frame)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MULTIFRAME_TRUE_COLOR_SC
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "OT", "Bench^Large", "BENCH"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.random.default_rng(0).integers(0, 255, frame * frames, np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return frames * frame


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's resident memory every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self._stop = pid, threading.Event()
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_kib(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def storescu(port: int, files: list[Path], aec: str) -> float:
    started = time.perf_counter()
    subprocess.run(["storescu", "-aec", aec, "127.0.0.1", str(port), *map(str, files)],
                   env=dcmtk_env(), check=True, capture_output=True)
    return time.perf_counter() - started


def wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(port)


def latencies(port: int, files: list[Path]) -> list[float]:
    """Round-trip time of each C-STORE, one association, pynetdicom SCU."""
    ae = AE("BENCH")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.9.1.1", ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="ECGDICOM")
    assert assoc.is_established
    out = []
    for path in files:
        ds = pydicom.dcmread(path)
        started = time.perf_counter()
        status = assoc.send_c_store(ds)
        out.append(time.perf_counter() - started)
        assert status.Status == 0, status
    assoc.release()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--queue-depth", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scp-"))
    results: dict[str, Any] = {"count": args.count, "cpu": os.cpu_count()}
    try:
        wanted = max(args.count, args.queue_depth) + 100
        files = copies_with_new_uids([SOURCE], work / "ecgs", wanted)
        stream = files[: args.count]

        # (a) bare SCP
        bare_out = work / "bare"
        bare_out.mkdir()
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SCP, str(bare_out), str(port)])
        wait_port(port)
        bare_s = storescu(port, stream, "BARE")
        bare.kill()
        bare_rate = args.count / bare_s

        # (b) serve, receiving only
        svc = ServeProcess(work / "serve", {"queue": {"workers": 0}})
        svc.workdir.mkdir()
        svc.start()
        assert svc.proc is not None
        base_rss = rss_kib(svc.proc.pid)
        with RssSampler(svc.proc.pid) as sampler:
            serve_s = storescu(svc.dicom_port, stream, "ECGDICOM")
        serve_rate = args.count / serve_s
        rss_stream = sampler.samples
        # memory after the stream vs. after a second stream of the same size
        rss_after_1 = rss_kib(svc.proc.pid)
        storescu(svc.dicom_port, files[args.count: args.count + 100], "ECGDICOM")
        rss_after_2 = rss_kib(svc.proc.pid)

        # latency, empty-ish queue vs. a queue of queue-depth jobs (workers off: nothing drains)
        svc.stop()
        shutil.rmtree(svc.workdir)
        svc.workdir.mkdir()
        svc.start()
        # Flush dirty pages first, so neither figure pays for the other's write-back.
        os.sync()
        lat_empty = latencies(svc.dicom_port, files[:50])
        fill = files[50: args.queue_depth]
        storescu(svc.dicom_port, fill, "ECGDICOM")
        depth = len(svc.jobs())
        os.sync()
        lat_deep = latencies(svc.dicom_port, files[args.queue_depth: args.queue_depth + 50])

        # large multi-frame SC
        large = work / "large-sc.dcm"
        size = make_large_sc(large)
        before = rss_kib(svc.proc.pid)
        with RssSampler(svc.proc.pid) as big_sampler:
            big_s = storescu(svc.dicom_port, [large], "ECGDICOM")
        large_growth = (max(big_sampler.samples) - before) / 1024
        svc.stop()

        # (c) serve with the worker running the model beside the listener
        busy_rate: float | str = "model weights missing: not measured"
        if (ROOT / "weights" / "ecg-yolov8m.pt").exists():
            svc2 = ServeProcess(work / "serve-workers", {})
            svc2.workdir.mkdir()
            svc2.start()
            busy_rate = round(100 / storescu(svc2.dicom_port, files[:100], "ECGDICOM"), 1)
            svc2.stop()

        results.update({
            "bare_scp_per_s": round(bare_rate, 1),
            "serve_per_s": round(serve_rate, 1),
            "serve_vs_bare": round(serve_rate / bare_rate, 3),
            "serve_with_worker_per_s_100": busy_rate,
            "latency_ms_empty_p50": round(1000 * statistics.median(lat_empty), 2),
            "latency_ms_empty_p95": round(1000 * np.percentile(lat_empty, 95), 2),
            "queue_depth": depth,
            "latency_ms_deep_p50": round(1000 * statistics.median(lat_deep), 2),
            "latency_ms_deep_p95": round(1000 * np.percentile(lat_deep, 95), 2),
            "rss_mib_start": round(base_rss / 1024, 1),
            "rss_mib_peak_stream": round(max(rss_stream) / 1024, 1),
            "rss_mib_after_stream": round(rss_after_1 / 1024, 1),
            "rss_mib_after_100_more": round(rss_after_2 / 1024, 1),
            "large_sc_mib": round(size / 2**20, 1),
            "large_sc_seconds": round(big_s, 2),
            "rss_growth_mib_large_sc": round(large_growth, 1),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"C-STORE into serve, {args.count} real ECGs via storescu (TCP_NODELAY=1, fsync on)")
    print(f"  bare pynetdicom SCP (write+fsync) : {results['bare_scp_per_s']:8.1f} /s")
    print(f"  ecg-dicom serve (receiving only)  : {results['serve_per_s']:8.1f} /s"
          f"  = {100 * results['serve_vs_bare']:.0f} % of bare (target >= 70 %)")
    print(f"  ecg-dicom serve (model running)   : {results['serve_with_worker_per_s_100']} /s")
    print("C-STORE latency (pynetdicom SCU, one association, 50 ECGs each)")
    print(f"  empty queue      p50 {results['latency_ms_empty_p50']:6.2f} ms"
          f"  p95 {results['latency_ms_empty_p95']:6.2f} ms")
    print(f"  {results['queue_depth']:>5}-deep queue p50 {results['latency_ms_deep_p50']:6.2f} ms"
          f"  p95 {results['latency_ms_deep_p95']:6.2f} ms")
    print("Resident memory of serve")
    print(f"  start {results['rss_mib_start']} MiB, peak over stream "
          f"{results['rss_mib_peak_stream']} MiB, after stream {results['rss_mib_after_stream']}"
          f" MiB, after 100 more {results['rss_mib_after_100_more']} MiB")
    print(f"  one {results['large_sc_mib']} MiB multi-frame SC in {results['large_sc_seconds']} s:"
          f" growth {results['rss_growth_mib_large_sc']} MiB (target <= 100 MiB)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_scp.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
