"""``ecg-dicom serve`` against real dcmtk tools on loopback.

Each test starts the real service as a process on free ports and talks DICOM to
it with ``echoscu`` / ``storescu`` (TCP_NODELAY=1).  A missing dcmtk tool is a
failure, not a skip: ``.ci/run`` installs dcmtk.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from ecg_dicom.config import OutputSettings
from peers import run_storescp
from realdata import copies_with_new_uids
from serve_proc import ServeProcess, run_tool

DEFAULT_UID_ROOT = OutputSettings().uid_root

pytestmark = pytest.mark.integration


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a DICOM file: everything after the File Meta group."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM", f"{path} has no DICOM preamble"
    # (0002,0000) File Meta Information Group Length, explicit VR LE, UL.
    assert data[132:136] == b"\x02\x00\x00\x00"
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length:]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path, {}).start()
    yield proc
    proc.stop()


def test_echo(service: ServeProcess) -> None:
    result = run_tool("echoscu", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port))
    assert result.returncode == 0, result.stderr


def test_every_real_ecg_is_acknowledged_spooled_byte_identical_and_processed(
    service: ServeProcess, real_ecgs: list[Path], tmp_path: Path
) -> None:
    # What storescu puts on the wire is not always the file's bytes (dcmtk re-encodes
    # the data set), so the reference is the same send into storescp in bit-preserving
    # mode, once accepting implicit VR only and once preferring explicit VR: each
    # instance is compared with the reference sent in the transfer syntax we accepted.
    reference: dict[tuple[str, str], bytes] = {}
    for name, option in (("implicit", "--implicit"), ("explicit", "--prefer-little")):
        with run_storescp(tmp_path / name, "--bit-preserving", option) as (ref_port, _):
            ref = run_tool("storescu", "-aec", "STORESCP", "127.0.0.1", str(ref_port),
                           *map(str, real_ecgs))
            assert ref.returncode == 0, ref.stderr
        for p in (tmp_path / name).iterdir():
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            reference[(str(ds.SOPInstanceUID), ds.file_meta.TransferSyntaxUID)] = (
                dataset_bytes(p))
    result = run_tool(
        "storescu", "-v", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port),
        *map(str, real_ecgs),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Received Store Response (Success)") == len(real_ecgs)

    jobs = service.wait_jobs(len(real_ecgs))
    assert len(jobs) == len(real_ecgs)
    by_uid = {j["sop_instance_uid"]: j for j in jobs}
    for path in real_ecgs:
        sent = pydicom.dcmread(path, stop_before_pixels=True)
        uid = str(sent.SOPInstanceUID)
        job = by_uid[uid]
        spooled = service.spool_dir / "instances" / f"{job['job_id']}.dcm"
        syntax = pydicom.dcmread(spooled, stop_before_pixels=True).file_meta.TransferSyntaxUID
        assert dataset_bytes(spooled) == reference[(uid, syntax)], path
        assert job["calling_ae"] == "STORESCU"
        assert job["state"] == "done", job
        assert job["result"]["label"] in ("Normal", "Abnormal", "Not interpretable")
        assert len(job["result"]["model_version"]) == 64


def test_caller_not_on_allow_list_is_rejected(tmp_path: Path, real_ecgs: list[Path]) -> None:
    proc = ServeProcess(
        tmp_path,
        {"dicom": {"allowed_callers": [{"ae_title": "CARDIOPACS", "hosts": ["127.0.0.1"]}]}},
    ).start()
    try:
        refused = run_tool("storescu", "-aet", "INTRUDER", "-aec", "ECGDICOM",
                           "127.0.0.1", str(proc.dicom_port), str(real_ecgs[0]))
        assert refused.returncode != 0
        assert "Association Rejected" in refused.stderr
        assert "Calling AE Title Not Recognized" in refused.stderr
        allowed = run_tool("storescu", "-aet", "CARDIOPACS", "-aec", "ECGDICOM",
                           "127.0.0.1", str(proc.dicom_port), str(real_ecgs[0]))
        assert allowed.returncode == 0, allowed.stderr
        jobs = proc.jobs()
        assert [j["calling_ae"] for j in jobs] == ["CARDIOPACS"]
    finally:
        proc.stop()


def test_non_ecg_sop_class_is_acknowledged_and_skipped(service: ServeProcess) -> None:
    """Every storage class is accepted at negotiation (a PACS sends whole studies);
    a non-ECG object is acknowledged, recorded as skipped and not kept (issue 10)."""
    ct = pydicom.examples.get_path("ct")
    result = run_tool("storescu", "-v", "-aec", "ECGDICOM", "127.0.0.1",
                      str(service.dicom_port), str(ct))
    assert result.returncode == 0, result.stderr
    assert "Received Store Response (Success)" in result.stderr
    [job] = service.jobs()
    assert job["state"] == "skipped", job
    assert job["reason"] == "skipped: CT Image Storage is not an ECG input"
    assert list((service.spool_dir / "instances").iterdir()) == []


def test_dataset_not_matching_its_sop_class_gets_a900(
    service: ServeProcess, tmp_path: Path, real_ecgs: list[Path]
) -> None:
    ds = pydicom.dcmread(real_ecgs[1])
    del ds.WaveformSequence
    ds.SOPInstanceUID = generate_uid()
    bad = tmp_path / "no-waveform.dcm"
    ds.save_as(bad)
    result = run_tool("storescu", "-v", "-aec", "ECGDICOM", "127.0.0.1",
                      str(service.dicom_port), str(bad))
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in result.stderr
    assert service.jobs() == []
    assert list((service.spool_dir / "instances").iterdir()) == []


def test_sigkill_after_acknowledgement_then_restart_processes_each_exactly_once(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    """The invariant of the spool: acknowledged means never lost, never doubled."""
    files = copies_with_new_uids([real_ecgs[2]], tmp_path / "send", 6)
    pacs_dir = tmp_path / "pacs"
    pacs_dir.mkdir()
    with run_storescp(pacs_dir) as (pacs_port, _):
        config = {"delivery": {"destinations": {
            "STORESCU": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}}}}
        first = ServeProcess(tmp_path / "svc", config)
        first.workdir.mkdir()
        first.start()
        sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                        str(first.dicom_port), *map(str, files))
        assert sent.returncode == 0, sent.stderr
        first.kill()  # right after the last acknowledgement, work still queued

        second = ServeProcess(first.workdir, config, first.dicom_port, first.http_port).start()
        try:
            jobs = second.wait_jobs(len(files))
        finally:
            assert second.stop() == 0
        assert len(jobs) == len(files)
        assert {j["state"] for j in jobs} == {"done"}, jobs
        assert sorted(j["sop_instance_uid"] for j in jobs) == sorted(
            str(pydicom.dcmread(f).SOPInstanceUID) for f in files)

        received = [pydicom.dcmread(p) for p in pacs_dir.rglob("*") if p.is_file()]
        outputs = [j["result"]["outputs"] for j in jobs]
        # Exactly one SC and one SR per acknowledged ECG, each the one its job recorded
        # (UIDs derived from content): a re-run after the crash re-sends the same objects.
        assert sorted(str(d.SOPInstanceUID) for d in received if d.Modality != "SR") == sorted(
            o["sc"] for o in outputs)
        assert sorted(str(d.SOPInstanceUID) for d in received if d.Modality == "SR") == sorted(
            o["sr"] for o in outputs)
        assert all(o["sc"].startswith(DEFAULT_UID_ROOT) for o in outputs)


def test_sigterm_shuts_down_cleanly(service: ServeProcess) -> None:
    assert service.stop(timeout=60) == 0
    assert '"ecg-dicom stopped"' in service.log()


def test_invalid_setting_stops_start_up_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text("dicom:\n  port: 70000\n  ae_title: THIS-AE-TITLE-IS-TOO-LONG\n")
    result = subprocess.run(
        [sys.executable, "-m", "ecg_dicom", "--config", str(cfg), "serve"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "dicom.port" in result.stderr and "ECG_DICOM_DICOM__PORT" in result.stderr
    assert "dicom.ae_title" in result.stderr
