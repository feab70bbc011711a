"""UIDs follow content, at a real PACS (dcmtk ``storescp``), through the real service.

* The same ECG sent again with nothing changed gives the very same SR and SC (same
  UIDs, same content): a re-send is idempotent.
* After ``model.conf`` changes, the same ECG gives a new SR and SC under new UIDs,
  and the new SR names the one it replaces (Predecessor Documents Sequence,
  PS3.3 C.17.2.3) -- a PACS never keeps a stale object under a UID whose content
  changed.
* Several ECGs of one study get distinct result Series Numbers.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from peers import free_port, run_storescp
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

MAC55 = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom-ecg" / "ge-mac55"
    / "ecg.dcm"
)


def _received(folder: Path) -> list[Dataset]:
    """The distinct instances the PACS holds (by SOP Instance UID: a re-send of the
    same UID is the same instance, PS3.4 B.4.1)."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            ds = pydicom.dcmread(path)
            found[str(ds.SOPInstanceUID)] = ds
    return list(found.values())


def _send(service: ServeProcess, *files: Path) -> None:
    sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port),
                    *map(str, files))
    assert sent.returncode == 0, sent.stderr


def _predecessor(sr: Dataset) -> tuple[str, str, str, str]:
    [study] = sr.PredecessorDocumentsSequence
    [series] = study.ReferencedSeriesSequence
    [instance] = series.ReferencedSOPSequence
    return (str(study.StudyInstanceUID), str(series.SeriesInstanceUID),
            str(instance.ReferencedSOPClassUID), str(instance.ReferencedSOPInstanceUID))


def test_changed_conf_gives_new_uids_and_names_the_replaced_sr(tmp_path: Path) -> None:
    pacs = tmp_path / "pacs"
    with run_storescp(pacs) as (pacs_port, _):
        config = {"delivery": {"destinations": {
            "STORESCU": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}}}}
        workdir = tmp_path / "svc"
        workdir.mkdir()
        first = ServeProcess(workdir, config, free_port(), free_port()).start()
        try:
            _send(first, MAC55)
            first.wait_jobs(1)
            _send(first, MAC55)  # the same ECG again, nothing changed
            jobs = first.wait_jobs(2)
        finally:
            assert first.stop() == 0
        assert [j["state"] for j in jobs] == ["done", "done"], jobs
        assert jobs[0]["result"]["outputs"] == jobs[1]["result"]["outputs"]
        before = _received(pacs)
        assert len(before) == 2, [d.Modality for d in before]  # one SR, one SC: idempotent
        [sr1] = [d for d in before if d.Modality == "SR"]
        [sc1] = [d for d in before if d.Modality != "SR"]
        assert "PredecessorDocumentsSequence" not in sr1

        changed = {**config, "model": {"conf": 0.25}}
        second = ServeProcess(workdir, changed, first.dicom_port, first.http_port).start()
        try:
            _send(second, MAC55)
            _send(second, MAC55)  # and again: the new result must not change a second time
            jobs = second.wait_jobs(4)
        finally:
            assert second.stop() == 0
        assert {j["state"] for j in jobs} == {"done"}, jobs
        after = _received(pacs)
        assert len(after) == 4, [d.Modality for d in after]
        [sr2] = [d for d in after if d.Modality == "SR" and d.SOPInstanceUID != sr1.SOPInstanceUID]
        [sc2] = [d for d in after if d.Modality != "SR" and d.SOPInstanceUID != sc1.SOPInstanceUID]
        assert sr2.SeriesInstanceUID != sr1.SeriesInstanceUID
        assert sc2.SeriesInstanceUID != sc1.SeriesInstanceUID
        assert _predecessor(sr2) == (str(sr1.StudyInstanceUID), str(sr1.SeriesInstanceUID),
                                     str(sr1.SOPClassUID), str(sr1.SOPInstanceUID))
        newest = max(jobs, key=lambda j: j["received_at"])
        assert newest["result"]["outputs"]["sr"] == sr2.SOPInstanceUID
        assert newest["result"]["outputs"]["replaces"] == sr1.SOPInstanceUID


def test_ecgs_of_one_study_get_distinct_series_numbers(tmp_path: Path) -> None:
    study = generate_uid()
    files = []
    for i in range(3):
        ds = pydicom.dcmread(MAC55)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = tmp_path / f"ecg{i}.dcm"
        ds.save_as(path)
        files.append(path)
    pacs = tmp_path / "pacs"
    with run_storescp(pacs) as (pacs_port, _):
        config = {"delivery": {"destinations": {
            "STORESCU": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}}}}
        (tmp_path / "svc").mkdir()
        service = ServeProcess(tmp_path / "svc", config).start()
        try:
            _send(service, *files)
            jobs = service.wait_jobs(3)
        finally:
            assert service.stop() == 0
    assert {j["state"] for j in jobs} == {"done"}, jobs
    received = _received(pacs)
    assert len(received) == 6
    assert {str(d.StudyInstanceUID) for d in received} == {study}
    numbers = [int(d.SeriesNumber) for d in received]
    assert len(set(numbers)) == 6, numbers
    assert sorted(numbers) == list(range(9901, 9907))
