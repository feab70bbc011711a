"""Benchmark: end-to-end seconds per ECG, C-STORE in -> SR + SC stored at the PACS.

In one run on this machine:

* the PACS is dcmtk ``storescp`` (TCP_NODELAY=1) and ``ecg-dicom serve`` sends
  results to it; ECGs are copies of the four real ECGs (three carts and
  pydicom's example) with new UIDs;
* latency: each ECG is sent alone (pynetdicom SCU) and the clock stops when its
  SC and SR are both written at the PACS; p50/p95 over N ECGs;
* throughput: N ECGs sent in one storescu run, until all results are at the PACS;
* the reference: the bare model inference (``Detector.detect`` on the same
  rendered pages, in this process) measured in the same run;
* the size in bytes of each annotated SC as the PACS stored it (p50 and max over
  every ECG of the run), with its transfer syntax.

    PYTHONPATH=tests .venv/bin/python bench/bench_e2e.py [--count 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import pydicom.config
from pydicom.uid import SecondaryCaptureImageStorage
from pynetdicom import AE

# serve_proc, peers, realdata: the tests' helpers (tests/); run with PYTHONPATH=tests (make bench).
import serve_proc
from ecg_dicom.startup import configure_libraries
from peers import dcmtk_env, run_storescp
from realdata import copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess

ROOT = Path(__file__).resolve().parents[1]


def wait_files(folder: Path, count: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for p in folder.iterdir() if p.suffix != ".tmp") < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} files expected in {folder}")
        time.sleep(0.005)


def stored_sc_sizes(folder: Path) -> tuple[list[int], set[str]]:
    """Bytes of every Secondary Capture storescp wrote into ``folder``, and their
    transfer syntaxes."""
    sizes: list[int] = []
    syntaxes: set[str] = set()
    for path in folder.iterdir():
        if path.suffix == ".tmp":
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.SOPClassUID == SecondaryCaptureImageStorage:
            sizes.append(path.stat().st_size)
            syntaxes.add(ds.file_meta.TransferSyntaxUID.name)
    return sizes, syntaxes


def bare_inference_ms(paths: list[Path]) -> list[float]:
    from ecg_dicom.config import ModelSettings
    from ecg_dicom.model import Detector
    from ecg_dicom.pages import page_from_dataset

    detector = Detector(ModelSettings(weights=serve_proc.WEIGHTS))
    pages = [page_from_dataset(pydicom.dcmread(p)) for p in paths]
    detector.detect(pages[0])  # warm-up
    times = []
    for page in pages * 3:
        started = time.perf_counter()
        detector.detect(page)
        times.append(1000 * (time.perf_counter() - started))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--weights", type=Path, default=serve_proc.WEIGHTS)
    args = parser.parse_args()
    serve_proc.WEIGHTS = args.weights
    configure_libraries()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        files = copies_with_new_uids(real_ecg_paths(), work / "ecgs", 2 * args.count)
        with run_storescp(work / "pacs") as (pacs_port, _):
            service = ServeProcess(work / "svc", {"delivery": {"destinations": {
                "BENCH": {"ae_title": "STORESCP", "host": "127.0.0.1", "port": pacs_port},
                "STORESCU": {"ae_title": "STORESCP", "host": "127.0.0.1", "port": pacs_port}}}})
            service.workdir.mkdir()
            service.start()
            ae = AE("BENCH")
            ae.add_requested_context("1.2.840.10008.5.1.4.1.1.9.1.1",
                                     ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
            latencies = []
            for i, path in enumerate(files[: args.count]):
                ds = pydicom.dcmread(path)
                started = time.perf_counter()
                assoc = ae.associate("127.0.0.1", service.dicom_port, ae_title="ECGDICOM")
                assert assoc.send_c_store(ds).Status == 0
                assoc.release()
                wait_files(work / "pacs", 2 * (i + 1))
                latencies.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(["storescu", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port),
                            *map(str, files[args.count:])], env=dcmtk_env(), check=True,
                           capture_output=True)
            wait_files(work / "pacs", 4 * args.count)
            batch_s = time.perf_counter() - started
            service.stop()
            sc_sizes, sc_syntaxes = stored_sc_sizes(work / "pacs")
        inference = bare_inference_ms(real_ecg_paths())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "count": args.count,
        "e2e_s_p50": round(statistics.median(latencies), 3),
        "e2e_s_p95": round(float(np.percentile(latencies, 95)), 3),
        "batch_ecg_per_s": round(args.count / batch_s, 2),
        "bare_inference_ms_p50": round(statistics.median(inference), 1),
        "bare_inference_ms_p95": round(float(np.percentile(inference, 95)), 1),
        "sc_bytes_p50": int(statistics.median(sc_sizes)),
        "sc_bytes_max": max(sc_sizes),
        "sc_transfer_syntax": sorted(sc_syntaxes),
    }
    print(f"End to end, C-STORE in -> SC + SR stored at storescp, {args.count} ECGs one by one")
    print(f"  p50 {results['e2e_s_p50']:.3f} s   p95 {results['e2e_s_p95']:.3f} s")
    print(f"  {args.count} ECGs in one storescu run: {results['batch_ecg_per_s']} ECG/s")
    print("Reference, same run: bare model inference on the rendered pages (Detector.detect)")
    print(f"  p50 {results['bare_inference_ms_p50']} ms   "
          f"p95 {results['bare_inference_ms_p95']} ms")
    print(f"  pipeline overhead at p50: "
          f"{1000 * results['e2e_s_p50'] - results['bare_inference_ms_p50']:.0f} ms")
    print(f"Annotated SC as stored at the PACS, {len(sc_sizes)} SCs "
          f"({', '.join(results['sc_transfer_syntax'])})")
    print(f"  p50 {results['sc_bytes_p50']} bytes   max {results['sc_bytes_max']} bytes per ECG")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_e2e.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
