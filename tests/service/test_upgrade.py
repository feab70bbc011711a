"""Queued work survives an upgrade: what v0.1 acknowledged, this version processes.

The previous release's package (``git archive`` of :data:`PREVIOUS`, the last commit
before the redesign) runs as a listener only (``queue.workers: 0``): real ECGs are
sent to it with ``storescu`` and acknowledged, so they wait in its spool, ledger and
huey queue.  It is stopped, and this version is started on the same folders: every
acknowledged ECG must be processed and its SR and SC delivered to a real
``storescp``, once.  The spool layout, the ledger schema and the huey task name
are the interface between the two.

The previous source comes from this repository's history: a clone without it (a
shallow clone) fails this test instead of skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from test_concurrency import evidence_uids

from peers import run_storescp
from realdata import ROOT, copies_with_new_uids
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

#: v0.1 as it stood before the redesign into subpackages (issue 11).
PREVIOUS = "91ad8f89d0a3a7d17f9b7bb9927ed9a1eebce0fa"


def previous_source(into: Path) -> Path:
    git = shutil.which("git")
    assert git, "git is needed to read the previous version from the repository's history"
    archive = subprocess.run(
        [git, "-C", str(ROOT), "archive", "--format=tar", PREVIOUS, "src"],
        capture_output=True, check=False,
    )
    assert archive.returncode == 0, (
        f"commit {PREVIOUS} not in this clone's history: {archive.stderr.decode()}"
    )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def test_jobs_queued_by_the_previous_version_are_processed_after_the_upgrade(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    old_src = previous_source(tmp_path / "previous")
    assert (old_src / "ecg_dicom" / "detect.py").is_file()  # really the old, flat layout
    work = tmp_path / "node"
    work.mkdir()
    files = copies_with_new_uids(real_ecgs, tmp_path / "send", 6)

    old = ServeProcess(work, {"queue": {"workers": 0}}, pythonpath=old_src).start()
    try:
        sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1", str(old.dicom_port),
                        *map(str, files))
        assert sent.returncode == 0, sent.stderr
        jobs = old.jobs()
        assert len(jobs) == len(files)
        assert {j["state"] for j in jobs} == {"received"}
    finally:
        assert old.stop() == 0

    with run_storescp(tmp_path / "pacs", aetitle="PACS") as (port, _):
        new = ServeProcess(
            work,
            {"delivery": {"fixed_destinations": [
                {"ae_title": "PACS", "host": "127.0.0.1", "port": port}]}},
            old.dicom_port, old.http_port,
        ).start()
        try:
            jobs = new.wait_jobs(len(files))
        finally:
            assert new.stop() == 0
    assert [j["state"] for j in jobs] == ["done"] * len(files), [j["reason"] for j in jobs]
    received = [pydicom.dcmread(p, stop_before_pixels=True)
                for p in (tmp_path / "pacs").iterdir() if p.is_file()]
    sources = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    assert len(received) == 2 * len(files)
    srs = [d for d in received if d.Modality == "SR"]
    assert len(srs) == len(files)
    # Each ECG's SR names it (and its SC) as evidence: one SR per acknowledged ECG.
    referenced = [uid for sr in srs for uid in evidence_uids(sr) if uid in sources]
    assert sorted(referenced) == sorted(sources)
