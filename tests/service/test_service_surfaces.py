"""Bad input, a full disk, the HTTP side and the offline CLI, against the real service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from serve_proc import MODEL_CACHE, WEIGHTS, ServeProcess, run_tool

pytestmark = pytest.mark.integration


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecg_dicom", *args], cwd=cwd, capture_output=True, text=True,
        timeout=300, check=False,
        env={
            "ECG_DICOM_MODEL__WEIGHTS": str(WEIGHTS),
            "ECG_DICOM_MODEL__EXPORT_CACHE_DIR": str(MODEL_CACHE),
            "PATH": "/usr/bin:/bin",
        },
    )


def broken_waveform(source: Path, folder: Path) -> Path:
    """A 12-lead ECG whose waveform data is cut short: it matches its SOP class, but
    cannot be rendered."""
    ds = pydicom.dcmread(source)
    group = ds.WaveformSequence[0]
    group.WaveformData = group.WaveformData[:100]
    ds.SOPInstanceUID = generate_uid()
    path = folder / "broken.dcm"
    ds.save_as(path)
    return path


def test_bad_waveform_fails_its_job_with_a_reason_and_the_next_ecg_is_processed(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    service = ServeProcess(tmp_path, {}).start()
    try:
        bad = broken_waveform(real_ecgs[1], tmp_path)
        sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port),
                        str(bad), str(real_ecgs[0]))
        assert sent.returncode == 0, sent.stderr  # both were acknowledged: both are stored
        jobs = {j["sop_instance_uid"]: j for j in service.wait_jobs(2)}
        failed = jobs[str(pydicom.dcmread(bad).SOPInstanceUID)]
        assert failed["state"] == "failed"
        assert failed["reason"].startswith("render:") and "Waveform" in failed["reason"]
        good = jobs[str(pydicom.dcmread(real_ecgs[0]).SOPInstanceUID)]
        assert good["state"] == "done"
        metrics = service.get("/metrics")
        assert 'ecgdicom_failed_total{stage="render"} 1.0' in metrics
        assert 'ecgdicom_acknowledged_total{status="0x0000"} 2.0' in metrics
    finally:
        service.stop()


def test_full_disk_answers_out_of_resources_and_stores_nothing(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    service = ServeProcess(tmp_path, {"storage": {"min_free_mb": 10**9}}).start()
    try:
        sent = run_tool("storescu", "-v", "-aec", "ECGDICOM", "127.0.0.1",
                        str(service.dicom_port), str(real_ecgs[0]))
        assert "Received Store Response (Refused: OutOfResources" in sent.stderr, sent.stderr
        assert service.jobs() == []
        assert list((service.spool_dir / "instances").iterdir()) == []
    finally:
        service.stop()


def test_upload_page_and_classify_api(tmp_path: Path, real_ecgs: list[Path]) -> None:
    service = ServeProcess(tmp_path, {}).start()
    try:
        page = service.get("/")
        assert "not for diagnostic use" in page and 'type="file"' in page
        status, result = service.post_file(real_ecgs[0])
        assert status == 200, result
        assert result["label"] in ("Normal", "Abnormal", "Not interpretable")
        assert result["notice"] == "AI result - not for diagnostic use"
        assert str(result["annotated_png"]).startswith("iVBOR")  # a PNG
        health = service.get("/healthz")
        assert health["algorithm_version"] == result["model_version"]
        # model.runtime auto, resolved for this machine, is what /healthz reports.
        from ecg_dicom.config import ModelSettings
        from ecg_dicom.model import resolve_runtime

        expected = resolve_runtime(ModelSettings())
        assert (health["runtime"], health["precision"]) == (expected.runtime, expected.precision)
        junk = tmp_path / "junk.dcm"
        junk.write_bytes(b"this is not DICOM")
        status, error = service.post_file(junk)
        assert status == 422 and error["detail"]
    finally:
        service.stop()


def test_classify_and_render_offline(tmp_path: Path, real_ecgs: list[Path]) -> None:
    result = cli("classify", "--json", *map(str, real_ecgs), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert [i["file"] for i in items] == list(map(str, real_ecgs))
    assert all(i["label"] in ("Normal", "Abnormal", "Not interpretable") for i in items)
    png = tmp_path / "page.png"
    rendered = cli("render", str(real_ecgs[-1]), "-o", str(png), cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    broken = cli("classify", str(broken_waveform(real_ecgs[1], tmp_path)), cwd=tmp_path)
    assert broken.returncode == 1 and "broken.dcm" in broken.stderr and not broken.stdout


def test_separate_worker_process_takes_the_jobs_of_a_listener_only_serve(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    """``serve`` with no worker threads only receives; ``ecg-dicom worker`` on the same
    spool and queue processes (how more worker processes are added on one machine)."""
    service = ServeProcess(tmp_path, {"queue": {"workers": 0}}).start()
    worker = None
    try:
        sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port),
                        *map(str, real_ecgs[:2]))
        assert sent.returncode == 0, sent.stderr
        assert {j["state"] for j in service.jobs()} == {"received"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "ecg_dicom", "worker"], cwd=tmp_path,
            env={"ECG_DICOM_CONFIG": str(tmp_path / "site.yaml"), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        jobs = service.wait_jobs(2)
        assert {j["state"] for j in jobs} == {"done"}, jobs
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        service.stop()
