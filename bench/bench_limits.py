"""Benchmark: bounded work per object (issue 12, item 2): each attack before and after,
and what reading pages in a child process costs a normal ECG.

Each attack runs in a fresh process (so its peak RSS is its own), reading the
object the way the service does: ``page_from_file`` for an upload or ``classify``,
the C-STORE header checks for a received object, and the 12-lead page header /
SC caption layout for a long name.  ``--src`` runs the same cases against another
checkout's ``src`` (e.g. ``git archive HEAD~N src | tar -x -C /tmp/old``), which
gives the "before" column.

Attacks (made streaming, never held whole by this script):
  png       a 12,000 x 12,000 grey PNG of zeros (about 140 KB)
  jpeg_sc   an 8,000 x 8,000 JPEG Secondary Capture (about 1 MB)
  pdf       a 200 x 7,500 pt PDF page (1.2 KB; at 1,600 px wide it is 96 M pixels)
  deflated  a Deflated SC inflating to 300 MB of pixels (the C-STORE header check)
  name      a 12-lead ECG whose Patient's Name has N characters (page header + SC caption)
  slow_pdf  a 500 KB PDF of 100,000 strokes (minutes to render)

Run:  PYTHONPATH=tests .venv/bin/python bench/bench_limits.py [--src /tmp/old/src]
      [--cases png,jpeg_sc,...] [--name-chars 20000] [--repeat 20]
Prints a table and writes bench/results/limits[-<label>].json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("BENCH_LIMITS_DIR", "/tmp/bench-limits"))


def png_of_zeros(path: Path, side: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    compressor, parts = zlib.compressobj(9), []
    row = bytes(side + 1)  # filter byte + pixels
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def jpeg_sc(path: Path, side: int, source: Path) -> Path:
    import pydicom
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid
    buffer = io.BytesIO()
    Image.new("L", (side, side), 255).save(buffer, "JPEG", quality=90)
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    for keyword in ("WaveformSequence", "WaveformAnnotationSequence"):
        if keyword in ds:
            del ds[keyword]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def pdf_of(path: Path, width_pt: int, height_pt: int) -> Path:
    import pypdfium2 as pdfium
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(width_pt, height_pt)
    with path.open("wb") as fh:
        pdf.save(fh)
    pdf.close()
    return path


def make(case: str, args: argparse.Namespace) -> Path:
    from realdata import real_ecg_paths
    ecg = real_ecg_paths()[0]
    WORK.mkdir(parents=True, exist_ok=True)
    if case == "png":
        return png_of_zeros(WORK / "zeros.png", 12_000)
    if case == "jpeg_sc":
        return jpeg_sc(WORK / "jpeg_sc.dcm", 8_000, ecg)
    if case == "pdf":
        return pdf_of(WORK / "tall.pdf", 200, 7_500)
    if case == "deflated":
        sys.path.insert(0, str(ROOT / "tests"))
        from test_bounded_work import deflated_bomb
        return deflated_bomb(ecg, WORK / "deflated.dcm", side=17_320)
    if case == "slow_pdf":
        from hostile import slow_pdf
        path = WORK / "slow.pdf"
        path.write_bytes(slow_pdf(100_000))
        return path
    if case == "name":
        import pydicom
        ds = pydicom.dcmread(ecg)
        ds.PatientName = "Q" * args.name_chars
        path = WORK / f"name{args.name_chars}.dcm"
        ds.save_as(path, implicit_vr=True, little_endian=True)
        return path
    raise SystemExit(f"unknown case {case}")


def run_case(case: str, path: Path, timeout: float) -> dict[str, object]:
    """In this process: read ``path`` as the service would; outcome, seconds, peak RSS."""
    import ecg_dicom.pages as pages
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    outcome = "read"
    try:
        if case == "deflated":
            from pydicom.uid import SecondaryCaptureImageStorage

            from ecg_dicom.dicom import ingest
            if hasattr(ingest, "check_inflated_size"):
                from ecg_dicom.config import LimitsSettings
                ingest.check_inflated_size(path, LimitsSettings())
            ingest.check_dataset(path, SecondaryCaptureImageStorage)
        elif case == "name":
            import pydicom

            from ecg_dicom.errors import NotInterpretableError
            from ecg_dicom.records import Classification
            from ecg_dicom.results.annotate import draw_result
            from ecg_dicom.results.captions import identity_line
            try:
                page = pages.page_from_file(path)
            except NotInterpretableError as exc:  # a page too short to read still gets one
                page = pages.not_interpretable_page(exc)
            result = Classification(label="Normal", class_name="Normal-ECG", confidence=0.9,
                                    abnormal_score=0.1, detections=(), model_name="bench",
                                    model_version="0" * 64)
            draw_result(page, result, identity_line(pydicom.dcmread(path)))
        elif hasattr(pages, "PageReader") and case == "slow_pdf":
            from ecg_dicom.config import LimitsSettings
            reader = pages.PageReader(LimitsSettings(stage_timeout=timeout))
            try:
                reader.page(path)
            finally:
                reader.close()
        else:
            pages.page_from_file(path)
    except Exception as exc:  # noqa: BLE001 (the outcome is what we report)
        outcome = f"{type(exc).__name__}: {exc}"[:160]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": case, "seconds": round(seconds, 3),
            "peak_rss_growth_mb": round((peak - baseline) / 1024, 1), "outcome": outcome}


def overhead(repeat: int) -> dict[str, float]:
    """ms per real ECG page: in the calling thread vs through the child process."""
    from ecg_dicom.config import LimitsSettings
    from ecg_dicom.pages import PageReader, page_from_file
    from realdata import real_ecg_paths
    paths = real_ecg_paths()
    reader = PageReader(LimitsSettings())
    started = time.perf_counter()
    reader.page(paths[0], received=True)
    first = time.perf_counter() - started
    timings: dict[str, list[float]] = {"thread": [], "child": []}
    for _ in range(repeat):
        for path in paths:
            t = time.perf_counter()
            page_from_file(path)
            timings["thread"].append(time.perf_counter() - t)
            t = time.perf_counter()
            reader.page(path, received=True)
            timings["child"].append(time.perf_counter() - t)
    peak = reader.last_peak_rss_kb / 1024
    reader.close()
    thread, child = (statistics.median(timings[k]) * 1000 for k in ("thread", "child"))
    return {"child_start_s": round(first, 2), "thread_ms": round(thread, 1),
            "child_ms": round(child, 1), "overhead_ms": round(child - thread, 1),
            "child_peak_rss_mb": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, help="another checkout's src (the 'before')")
    parser.add_argument("--cases", default="png,jpeg_sc,pdf,deflated,name,slow_pdf")
    parser.add_argument("--name-chars", type=int, default=70_000)
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a case may run (and the stage_timeout after)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.path, args.timeout)))
        return
    env = dict(os.environ)
    paths = [str(ROOT / "tests")]
    if args.src:
        paths.insert(0, str(args.src))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    rows = []
    for case in args.cases.split(","):
        path = make(case, args)
        try:
            done = subprocess.run(
                [sys.executable, __file__, "--one", case, "--path", str(path),
                 "--timeout", str(args.timeout)],
                env=env, capture_output=True, text=True, timeout=args.timeout + 30, check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = {"case": case, "seconds": f">{args.timeout + 30:g}", "peak_rss_growth_mb": "?",
                   "outcome": "still running: killed"}
        row["bytes"] = path.stat().st_size
        rows.append(row)
        print(f"{case:10} {row['bytes']:>10,} B  {row['seconds']:>8} s  "
              f"+{row['peak_rss_growth_mb']} MB  {row['outcome']}", flush=True)
    result: dict[str, object] = {"src": str(args.src or ROOT / "src"), "cases": rows}
    if not args.src:
        result["overhead"] = overhead(args.repeat)
        print("child process per ECG:", result["overhead"])
    label = "-before" if args.src else ""
    out = ROOT / "bench" / "results" / f"limits{label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
