"""A real cart ECG that cannot be read comes back "Not interpretable", with the reason,
in the SR and the SC -- never as a Normal or Abnormal call (issue 10, item 6).

Two copies of the GE MAC55 cart's ECG, as a broken cart or converter sends them:

* flat: every sample 0 (before the fix: "Abnormal, History_MI 0.97");
* NaN-calibrated: Channel Sensitivity (003A,0210) "NaN" in every channel, so no
  trace at all can be drawn (before: "Abnormal, MI-ECG 0.91").

Both are sent with dcmtk ``storescu`` to the real service (``ecg-dicom serve``, a
process) whose destination is a real dcmtk ``storescp``.  What the "PACS" receives is
checked with dcmtk and dicom3tools: ``dsrdump`` shows "No algorithms succeeded;
without findings" and the reason; ``dciodvfy`` reports no error in the SR; the SC
shows the blank page with the reason written in it (the same pixels the renderer
gives for that input) and no trace.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages import not_interpretable_page, page_from_file
from ecg_dicom.records import Page
from ecg_dicom.results import to_sc_pixels
from peers import dcmtk_env, require_tool, run_storescp
from realdata import DICOM_ECG_DIR
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

MAC55 = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"
#: What each copy's reason must say (worded by waveform.check_signal).
REASONS = {
    "flat": "the recording is flat: every lead's peak-to-peak is below 20 uV",
    "nan": "is not a number after calibration (NaN or infinite: Channel Sensitivity (003A,0210))",
}


def _copy(kind: str, folder: Path) -> Path:
    """A copy of the MAC55 ECG with a new SOP Instance UID, made flat or NaN-calibrated."""
    ds = pydicom.dcmread(MAC55)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    group = ds.WaveformSequence[0]
    if kind == "flat":
        group.WaveformData = bytes(len(group.WaveformData))
    else:
        tag = Tag(0x003A, 0x0210)  # Channel Sensitivity, written as a broken converter does
        for channel in group.ChannelDefinitionSequence:
            channel[tag] = RawDataElement(tag, "DS", 4, b"NaN ", 0, False, True)
    path = folder / f"{kind}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _expected_page(path: Path) -> Page:
    """The page the renderer gives for this input (the service builds the SC on it)."""
    with pytest.raises(NotInterpretableError) as caught:
        page_from_file(path)
    return not_interpretable_page(caught.value)


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool(name), *args], capture_output=True, text=True,
                          env=dcmtk_env(), check=False, timeout=120)


@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Dataset, list[Path]]]:
    """Send both copies through the real service to a real storescp; per copy its
    source data set and the files the PACS received for it."""
    root = tmp_path_factory.mktemp("not-interpretable")
    sources = {kind: _copy(kind, root) for kind in REASONS}
    pacs_dir = root / "pacs"
    with run_storescp(pacs_dir, aetitle="PACS") as (pacs_port, _):
        config = {"delivery": {"destinations": {
            "STORESCU": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}}}}
        (root / "svc").mkdir()
        service = ServeProcess(root / "svc", config).start()
        try:
            sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                            str(service.dicom_port), *map(str, sources.values()))
            assert sent.returncode == 0, sent.stderr
            jobs = service.wait_jobs(len(sources))
        finally:
            service.stop()
    by_uid = {j["sop_instance_uid"]: j for j in jobs}
    out: dict[str, tuple[Dataset, list[Path]]] = {}
    files = [p for p in pacs_dir.rglob("*") if p.is_file()]
    for kind, path in sources.items():
        source = pydicom.dcmread(path)
        job = by_uid[str(source.SOPInstanceUID)]
        assert job["state"] == "done", job
        assert job["result"]["label"] == "Not interpretable", job["result"]
        assert REASONS[kind] in job["result"]["reason"]
        assert job["result"]["probability"] is None and job["result"]["detections"] == []
        mine = [f for f in files
                if pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID
                == source.StudyInstanceUID
                and _references(pydicom.dcmread(f, stop_before_pixels=True), source)]
        out[kind] = (source, mine)
    return out


def _references(ds: Dataset, source: Dataset) -> bool:
    """Whether a received result names ``source`` (SC: Source Instance; SR: evidence)."""
    uid = str(source.SOPInstanceUID)
    if ds.Modality == "SR":
        return any(
            item.ReferencedSOPInstanceUID == uid
            for study in ds.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence
            for item in series.ReferencedSOPSequence
        )
    return any(item.ReferencedSOPInstanceUID == uid for item in ds.SourceInstanceSequence)


def _split(files: list[Path]) -> tuple[Path, Path]:
    srs = [f for f in files if pydicom.dcmread(f, stop_before_pixels=True).Modality == "SR"]
    scs = [f for f in files if f not in srs]
    assert len(srs) == 1 and len(scs) == 1, files
    return srs[0], scs[0]


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_sr_says_not_interpretable_with_the_reason(
    received: dict[str, tuple[Dataset, list[Path]]], kind: str
) -> None:
    _, files = received[kind]
    sr_path, _ = _split(files)
    dump = _tool("dsrdump", "+Pl", "+Pc", str(sr_path))
    assert dump.returncode == 0, dump.stderr
    assert "No algorithms succeeded; without findings" in dump.stdout
    assert "111245" in dump.stdout
    assert "Not interpretable: " in dump.stdout and REASONS[kind][:40] in dump.stdout
    # No finding stated: no Normal / Abnormal ECG, no probability, no box.
    for absent in ("164854000", "102594003", "Probability", "POLYLINE"):
        assert absent not in dump.stdout, absent

    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    report = sr.content
    assert isinstance(report, hd.sr.MeasurementReport), type(report)
    (summary,) = report.get_image_measurement_groups()
    assert summary.finding_type is None
    texts = [item.TextValue for item in summary[0].ContentSequence
             if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "121106"]
    assert len(texts) == 1 and REASONS[kind] in texts[0]
    assert report.get_planar_roi_measurement_groups() == []


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_sr_is_valid_dicom(received: dict[str, tuple[Dataset, list[Path]]], kind: str) -> None:
    _, files = received[kind]
    sr_path, _ = _split(files)
    run = _tool("dciodvfy", str(sr_path))
    errors = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, errors


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_sc_shows_the_reason_and_no_trace(
    received: dict[str, tuple[Dataset, list[Path]]], kind: str, tmp_path: Path
) -> None:
    source, files = received[kind]
    _, sc_path = _split(files)
    sc = pydicom.dcmread(sc_path)
    assert sc.BurnedInAnnotation == "YES"
    copy = tmp_path / "source.dcm"
    source.save_as(copy, enforce_file_format=True)
    page = _expected_page(copy)
    assert page.regions == ()  # nothing could be drawn: the blank page with the reason
    x0, y0, x1, y1 = (round(v) for v in to_sc_pixels(
        (0.0, 0.0, float(page.image.shape[1]), float(page.image.shape[0])), page))
    shown = np.asarray(sc.pixel_array)[y0:y1, x0:x1]
    assert np.array_equal(shown, page.image)  # the reason written, no trace, lossless
